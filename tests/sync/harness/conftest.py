"""``--seed N`` runs one seed of the acceptance harness; without it CI runs ``CI_SEEDS``.

The option is registered here (not in tests/conftest.py), so it exists when pytest is pointed
at this directory: ``pytest tests/sync/harness --seed 1234``. The name is checked against the
options other plugins define (hypothesis has ``--hypothesis-seed``, nothing owns ``--seed``).
"""

from __future__ import annotations

import pytest

CI_SEEDS = (11, 2024, 90210)
# Seeds that hit a known, reported server bug run as non-strict xfails until it is fixed (so a
# fix shows up as XPASS); none at present. ``--seed N`` never xfails.
KNOWN_SERVER_BUGS: dict[int, str] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nidaan-sync-harness")
    group.addoption(
        "--seed",
        action="store",
        type=int,
        default=None,
        dest="sync_harness_seed",
        help="run the sync acceptance harness with this seed only (reproduces a failure)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "seed" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("sync_harness_seed", default=None)
        seeds = [chosen] if chosen is not None else list(CI_SEEDS)
        params = [
            pytest.param(
                seed,
                id=f"seed{seed}",
                marks=[pytest.mark.xfail(reason=KNOWN_SERVER_BUGS[seed], strict=False)]
                if chosen is None and seed in KNOWN_SERVER_BUGS
                else [],
            )
            for seed in seeds
        ]
        metafunc.parametrize("seed", params)
