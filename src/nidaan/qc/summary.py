"""The monthly QC summary: per analyte, instrument and control level, the month's number of
results and runs, mean, SD and CV%, against the target, with the violations counted. As CSV
(for a spreadsheet) and PDF (for the quality file an NABL assessor reads)."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import jinja2
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.principal import Principal
from nidaan.catalog.models import CatalogTest
from nidaan.integration.models import Instrument
from nidaan.kit.errors import InvalidInput
from nidaan.kit.time import IST, utcnow
from nidaan.qc import domain
from nidaan.qc.models import QcLot, QcMaterial, QcResult, QcViolation
from nidaan.reports.render import font_faces, html_to_pdf

TEMPLATES = Path(__file__).parent / "templates"
COLUMNS = (
    "test_code",
    "test_name",
    "instrument",
    "material",
    "level",
    "lot_number",
    "results",
    "runs",
    "mean",
    "sd",
    "cv_percent",
    "target_mean",
    "target_sd",
    "warnings",
    "rejections",
)


@dataclass(frozen=True)
class SummaryRow:
    test_code: str
    test_name: str
    instrument: str
    material: str
    level: str
    lot_number: str
    results: int
    runs: int
    mean: Decimal | None
    sd: Decimal | None
    cv_percent: Decimal | None
    target_mean: Decimal | None
    target_sd: Decimal | None
    warnings: int
    rejections: int


@dataclass(frozen=True)
class Summary:
    month: str  # YYYY-MM
    start: datetime
    end: datetime
    rows: list[SummaryRow]
    generated_at: datetime


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` -> the month's first instant and the next month's, in the lab's zone (IST)."""
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise InvalidInput("month must be YYYY-MM, e.g. 2025-01.", field="month") from None
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return (
        datetime(first.year, first.month, 1, tzinfo=IST),
        datetime(following.year, following.month, 1, tzinfo=IST),
    )


async def monthly_summary(session: AsyncSession, caller: Principal, month: str) -> Summary:
    from nidaan.qc.service import instruments_reached  # the service renders nothing

    start, end = month_bounds(month)
    org = caller.organisation_id
    rows = (
        await session.execute(
            select(QcResult.lot_id, QcResult.value, QcResult.run_id)
            .where(
                QcResult.organisation_id == org,
                *instruments_reached(caller, QcResult.instrument_id),
                QcResult.measured_at >= start,
                QcResult.measured_at < end,
            )
            .order_by(QcResult.measured_at)
        )
    ).all()
    values: dict[uuid.UUID, list[Decimal]] = {}
    runs: dict[uuid.UUID, set[uuid.UUID]] = {}
    for lot_id, value, run_id in rows:
        values.setdefault(lot_id, []).append(value)
        runs.setdefault(lot_id, set()).add(run_id)
    counts = {
        (row.lot_id, row.severity): row.n
        for row in await session.execute(
            select(QcViolation.lot_id, QcViolation.severity, func.count().label("n"))
            .join(QcResult, QcResult.id == QcViolation.qc_result_id)
            .where(
                QcViolation.organisation_id == org,
                *instruments_reached(caller, QcViolation.instrument_id),
                QcResult.measured_at >= start,
                QcResult.measured_at < end,
            )
            .group_by(QcViolation.lot_id, QcViolation.severity)
        )
    }
    lots = (
        await session.execute(
            select(QcLot, QcMaterial, CatalogTest, Instrument)
            .join(QcMaterial, QcMaterial.id == QcLot.material_id)
            .join(CatalogTest, CatalogTest.id == QcLot.test_id)
            .join(Instrument, Instrument.id == QcLot.instrument_id)
            .where(QcLot.organisation_id == org, QcLot.id.in_(list(values)))
        )
    ).all()
    out = []
    for lot, material, test, instrument in lots:
        figures = domain.stats(values[lot.id])
        out.append(
            SummaryRow(
                test_code=test.code,
                test_name=test.name,
                instrument=instrument.name,
                material=material.name,
                level=material.level,
                lot_number=lot.lot_number,
                results=figures.n,
                runs=len(runs[lot.id]),
                mean=figures.mean,
                sd=figures.sd,
                cv_percent=figures.cv_percent,
                target_mean=lot.mean,
                target_sd=lot.sd,
                warnings=counts.get((lot.id, domain.Severity.WARNING), 0),
                rejections=counts.get((lot.id, domain.Severity.REJECT), 0),
            )
        )
    out.sort(key=lambda r: (r.test_code, r.instrument, r.level, r.lot_number))
    return Summary(month, start, end, out, utcnow())


def _number(value: Decimal | None, places: int = 4) -> str:
    if value is None:
        return ""
    return f"{value.quantize(Decimal(1).scaleb(-places)).normalize():f}"


def to_csv(summary: Summary) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in summary.rows:
        writer.writerow(
            [
                _safe(row.test_code),
                _safe(row.test_name),
                _safe(row.instrument),
                _safe(row.material),
                _safe(row.level),
                _safe(row.lot_number),
                row.results,
                row.runs,
                _number(row.mean),
                _number(row.sd),
                _number(row.cv_percent, 2),
                _number(row.target_mean),
                _number(row.target_sd),
                row.warnings,
                row.rejections,
            ]
        )
    return buffer.getvalue()


def _safe(text: str) -> str:
    """Keep a spreadsheet from reading a cell as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["number"] = _number
    environment.filters["ist"] = lambda v: v.astimezone(IST).strftime("%d-%b-%Y %H:%M IST")
    return environment


def to_html(summary: Summary, lab_name: str) -> str:
    return (
        _environment()
        .get_template("monthly_summary.html.j2")
        .render(summary=summary, lab_name=lab_name, fonts=font_faces())
    )


async def to_pdf(summary: Summary, lab_name: str) -> bytes:
    html = to_html(summary, lab_name)
    return (await asyncio.to_thread(html_to_pdf, html)).data
