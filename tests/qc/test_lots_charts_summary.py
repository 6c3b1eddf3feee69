"""Control lots through the API: targets established from the lab's own first N runs
(establishing -> active -> expired), rules switched per analyte, Levey-Jennings charts as SVG
and PNG, and the monthly summary as CSV and PDF with figures that match the results."""

from __future__ import annotations

import csv
import io
import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree

import httpx
import pypdfium2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.kit.ids import new_id
from nidaan.tenancy.models import Organisation
from tests.qc.support import Bench, make_bench, qc_run


@pytest.fixture
async def bench(session: AsyncSession, organisation: Organisation) -> Bench:
    return await make_bench(session, organisation)


async def _material(client: httpx.AsyncClient, bench: Bench, level: str = "3") -> str:
    response = await client.post(
        "/api/v1/qc/materials",
        json={"name": f"Own control {new_id().hex[-6:]}", "level": level},
        headers=bench.lab.headers("path"),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _established_lot(client: httpx.AsyncClient, bench: Bench, runs: int) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/qc/lots",
        json={
            "material_id": await _material(client, bench),
            "lot_number": f"OWN-{new_id().hex[-6:]}",
            "expires_on": (datetime.now(UTC).date() + timedelta(days=60)).isoformat(),
            "instrument_id": str(bench.analyzer.id),
            "test_id": str(bench.glucose.id),
            "control_id": f"QC-OWN-{new_id().hex[-6:]}",
            "target_source": "established",
            "establish_runs": runs,
        },
        headers=bench.lab.headers("path"),
    )
    assert response.status_code == 201, response.text
    lot = response.json()
    assert (lot["state"], lot["mean"], lot["sd"]) == ("establishing", None, None)
    return dict(lot)


@given(
    values=st.lists(
        st.decimals(min_value=80, max_value=120, places=1), min_size=3, max_size=8
    ).filter(lambda v: len(set(v)) > 1)
)
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
async def test_a_lot_establishes_its_own_target_from_its_first_runs_then_expires(
    client: httpx.AsyncClient, bench: Bench, values: list[Decimal]
) -> None:
    lot = await _established_lot(client, bench, runs=len(values))
    start = datetime.now(UTC) - timedelta(days=len(values) + 1)
    headers = bench.lab.headers("tech")
    for day, value in enumerate(values):
        entered = await client.post(
            "/api/v1/qc/results",
            json={
                "lot_id": lot["id"],
                "value": str(value),
                "measured_at": (start + timedelta(days=day)).isoformat(),
            },
            headers=headers,
        )
        assert entered.status_code == 201, entered.text
        if day < len(values) - 1:
            # No target yet: no z-score and no Westgard judgement while establishing.
            assert entered.json()["z"] is None
            assert entered.json()["violations"] == []
    now = (await client.get(f"/api/v1/qc/lots/{lot['id']}", headers=headers)).json()
    mean, sd = statistics.mean(values), statistics.stdev(values)
    assert now["state"] == "active"
    assert abs(Decimal(now["mean"]) - mean) < Decimal("0.000001")
    assert abs(Decimal(now["sd"]) - sd) < Decimal("0.00001")
    listed = await client.get(
        "/api/v1/qc/results", params={"lot_id": lot["id"], "limit": 100}, headers=headers
    )
    z = sorted(Decimal(r["z"]) for r in listed.json()["items"])
    assert z == sorted(((v - mean) / sd).quantize(Decimal("0.0001")) for v in values)

    expired = await client.post(
        f"/api/v1/qc/lots/{lot['id']}/expire", headers=bench.lab.headers("path")
    )
    assert expired.json()["state"] == "expired"
    refused = await client.post(
        "/api/v1/qc/results", json={"lot_id": lot["id"], "value": "100"}, headers=headers
    )
    assert refused.status_code == 409, refused.text
    assert len(
        (
            await client.get(
                "/api/v1/qc/results", params={"lot_id": lot["id"], "limit": 100}, headers=headers
            )
        ).json()["items"]
    ) == len(values)


async def test_rules_are_switched_per_analyte_by_a_permitted_role(
    client: httpx.AsyncClient, session: AsyncSession, bench: Bench
) -> None:
    url = f"/api/v1/qc/rules/{bench.glucose.id}"
    defaults = (await client.get(url, headers=bench.lab.headers("tech"))).json()
    assert defaults["rules"]["1-2s"] == "warning"
    assert defaults["rules"]["1-3s"] == "reject"
    body = {"rules": {"1-2s": "off", "2-2s": "warning"}}
    assert (await client.put(url, json=body, headers=bench.lab.headers("front"))).status_code == 403
    changed = await client.put(url, json=body, headers=bench.lab.headers("path"))
    assert changed.status_code == 200, changed.text
    assert changed.json()["rules"]["1-2s"] == "off"
    failed = await qc_run(session, bench, 2.4, 2.2)
    # 1-2s is off; 2-2s only warns now, so the run does not reject.
    assert [(v.rule, v.severity) for v in failed.violations] == [("2-2s", "warning")]
    assert failed.run.outcome != "rejected"
    bad = await client.put(
        url, json={"rules": {"5-5s": "reject"}}, headers=bench.lab.headers("path")
    )
    assert bad.status_code == 422


async def test_levey_jennings_chart_as_svg_and_png(
    client: httpx.AsyncClient, session: AsyncSession, bench: Bench
) -> None:
    for z1 in (0.2, -0.8, 1.1, 0.4):
        await qc_run(session, bench, z1, 0.0)
    failed = await qc_run(session, bench, 3.3, 0.1)  # 1-3s on level 1
    assert any(v.rule == "1-3s" for v in failed.violations)
    headers = bench.lab.headers("tech")
    svg = await client.get(f"/api/v1/qc/charts/{bench.level1.id}.svg", headers=headers)
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    tree = ElementTree.fromstring(svg.content)
    texts = {"".join(t.itertext()).strip() for t in tree.iter("{http://www.w3.org/2000/svg}text")}
    assert {"Mean", "+1 SD", "-1 SD", "+2 SD", "-2 SD", "+3 SD", "-3 SD"} <= texts
    assert "1-2s, 1-3s" in texts  # the violations are marked on their point
    assert "Glucose" in svg.text
    png = await client.get(f"/api/v1/qc/charts/{bench.level1.id}.png", headers=headers)
    assert png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    assert image.format == "PNG"
    assert image.width > 400
    assert image.height > 200
    empty = await client.get(
        f"/api/v1/qc/charts/{bench.level1.id}.svg",
        params={"until": "2000-01-01T00:00:00Z"},
        headers=headers,
    )
    assert "No QC results in this period" in empty.text


async def test_monthly_summary_as_csv_and_pdf(
    client: httpx.AsyncClient, session: AsyncSession, bench: Bench
) -> None:
    z_scores = [0.5, -1.0, 1.5, 3.2]
    for z1 in z_scores:
        await qc_run(session, bench, z1, 0.0)
    # The lab's month (IST): near midnight on the 1st it differs from the UTC month.
    month = (datetime.now(UTC) + timedelta(hours=5, minutes=30)).strftime("%Y-%m")
    headers = bench.lab.headers("path")
    response = await client.get(f"/api/v1/qc/summary/{month}.csv", headers=headers)
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    [level1] = [r for r in rows if r["lot_number"] == "L1-2601" and r["level"] == "1"]
    values = [Decimal("100") + Decimal(str(z)) * 4 for z in z_scores]
    mean, sd = statistics.mean(values), statistics.stdev(values)
    assert level1["test_code"] == bench.glucose.code
    assert (int(level1["results"]), int(level1["runs"])) == (4, 4)
    assert abs(Decimal(level1["mean"]) - mean) < Decimal("0.01")
    assert abs(Decimal(level1["sd"]) - sd) < Decimal("0.01")
    assert abs(Decimal(level1["cv_percent"]) - sd / mean * 100) < Decimal("0.01")
    assert (Decimal(level1["target_mean"]), Decimal(level1["target_sd"])) == (100, 4)
    assert (int(level1["warnings"]), int(level1["rejections"])) == (1, 1)  # 1-2s, 1-3s
    pdf = await client.get(f"/api/v1/qc/summary/{month}.pdf", headers=headers)
    assert pdf.headers["content-type"] == "application/pdf"
    document = pypdfium2.PdfDocument(pdf.content)
    text = "".join(page.get_textpage().get_text_range() for page in document)
    assert bench.glucose.code in text
    assert "L1-2601" in text
    bad = await client.get("/api/v1/qc/summary/2025-13.csv", headers=headers)
    assert bad.status_code in (400, 422)
