"""How long a tube may travel before it is too old to test: the cold-chain time from
collection to receipt against its stability window. Generic (walk-in, collection centre or
home visit alike); a sample past its window is flagged for rejection as
``delayed_in_transit`` — a person decides, nothing is rejected automatically.

The window is the container's default unless a test in the tube has a stricter one in the
catalogue (``catalog_tests.stability_hours``, e.g. ammonia or lactate in a tube whose
container would otherwise allow a day): the stricter of the two wins, never the looser, so a
catalogue entry cannot stretch a container past what it keeps."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from nidaan.catalog.enums import Container

#: Hours a tube stays fit at ambient/transport temperature, per container. Conservative
#: figures from common pre-analytical guidance: unspun serum/plasma 6-8 h, EDTA whole blood
#: for a CBC 24 h, fluoride (glucose) 24 h, citrate (coagulation) 4 h, urine 2 h unrefrigerated.
DEFAULT_STABILITY_HOURS: dict[str, int] = {
    Container.EDTA_LAVENDER: 24,
    Container.SST_YELLOW: 8,
    Container.PLAIN_RED: 8,
    Container.FLUORIDE_GREY: 24,
    Container.CITRATE_BLUE: 4,
    Container.HEPARIN_GREEN: 8,
    Container.URINE_CONTAINER: 2,
    Container.STERILE_CONTAINER: 2,
    Container.STOOL_CONTAINER: 2,
}
#: A container the table does not know gets the strictest common window.
FALLBACK_HOURS = 4


def stability_hours(container: str, test_hours: int | None = None) -> int:
    """The window for a tube: the container default, or the strictest test window of the
    tube's tests when that is shorter."""
    default = DEFAULT_STABILITY_HOURS.get(container, FALLBACK_HOURS)
    return default if test_hours is None else min(default, test_hours)


def strictest(windows: Iterable[int | None]) -> int | None:
    """The shortest of the tests' own windows (None when no test has one)."""
    given = [hours for hours in windows if hours is not None]
    return min(given) if given else None


def transit(collected_at: datetime | None, received_at: datetime | None) -> timedelta | None:
    """Collection -> receipt; None until both are known (a clock-skewed phone can make the
    difference negative: that counts as zero, not as a fresh tube from the future)."""
    if collected_at is None or received_at is None:
        return None
    return max(received_at - collected_at, timedelta(0))


def past_stability(
    container: str,
    collected_at: datetime | None,
    received_at: datetime | None,
    test_hours: int | None = None,
) -> bool:
    """True when the tube arrived after its stability window (flag it for rejection)."""
    spent = transit(collected_at, received_at)
    return spent is not None and spent > timedelta(hours=stability_hours(container, test_hours))
