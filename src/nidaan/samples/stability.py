"""How long a tube may travel before it is too old to test: the cold-chain time from
collection to receipt against the container's stability window. Generic (walk-in,
collection centre or home visit alike); a sample past its window is flagged for rejection
as ``delayed_in_transit`` — a person decides, nothing is rejected automatically."""

from __future__ import annotations

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


def stability_hours(container: str, override: int | None = None) -> int:
    """The window for a tube: the catalogue's override if set, else the container default."""
    if override is not None:
        return override
    return DEFAULT_STABILITY_HOURS.get(container, FALLBACK_HOURS)


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
    override: int | None = None,
) -> bool:
    """True when the tube arrived after its stability window (flag it for rejection)."""
    spent = transit(collected_at, received_at)
    return spent is not None and spent > timedelta(hours=stability_hours(container, override))
