"""Levey-Jennings charts: one control lot (an analyte at one level on one instrument) over
time, with the target mean, the ±1, ±2 and ±3 SD lines and the violations marked.

Drawn with matplotlib's object API (no pyplot state, so charts can render in worker threads)
as SVG (text kept as text) or PNG. Rendering is CPU work: callers run it off the event loop.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

import matplotlib
import matplotlib.dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.principal import Principal
from nidaan.catalog.models import CatalogTest
from nidaan.integration.models import Instrument
from nidaan.kit.time import IST
from nidaan.qc import domain
from nidaan.qc.models import QcMaterial, QcResult

matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text in the SVG (searchable)
matplotlib.rcParams["svg.hashsalt"] = "nidaan-qc"  # stable element ids

Format = Literal["svg", "png"]
REJECT_COLOUR = "#c62828"
WARNING_COLOUR = "#ef8f00"


@dataclass(frozen=True)
class ChartPoint:
    measured_at: datetime
    value: Decimal
    rules: tuple[str, ...] = ()  # rules broken at this point
    rejected: bool = False


@dataclass(frozen=True)
class ChartData:
    title: str
    subtitle: str
    unit: str | None
    mean: Decimal | None
    sd: Decimal | None
    points: Sequence[ChartPoint] = field(default_factory=tuple)
    provisional: bool = False  # the target is not set yet (lot establishing): from the data


def render(chart: ChartData, fmt: Format) -> bytes:
    """The chart as SVG or PNG bytes."""
    figure = Figure(figsize=(10, 4.6), dpi=110)
    axes = figure.add_subplot(1, 1, 1)
    figure.subplots_adjust(left=0.08, right=0.88, top=0.84, bottom=0.16)
    figure.suptitle(chart.title, x=0.08, ha="left", fontsize=12, fontweight="bold")
    axes.set_title(chart.subtitle, loc="left", fontsize=9, color="#4b5b66")
    times = [p.measured_at.astimezone(IST) for p in chart.points]
    values = [float(p.value) for p in chart.points]
    mean = float(chart.mean) if chart.mean is not None else None
    sd = float(chart.sd) if chart.sd is not None and chart.sd > 0 else None
    if mean is not None:
        axes.axhline(mean, color="#0b4f6c", linewidth=1.4)
        _label(axes, mean, "Mean" + (" (provisional)" if chart.provisional else ""))
    if mean is not None and sd is not None:
        for k, style, colour in (
            (1, ":", "#7b8d97"),
            (2, "--", WARNING_COLOUR),
            (3, "-", REJECT_COLOUR),
        ):
            for sign in (1, -1):
                level = mean + sign * k * sd
                axes.axhline(level, color=colour, linestyle=style, linewidth=1.0)
                _label(axes, level, f"{'+' if sign > 0 else '-'}{k} SD")
        axes.set_ylim(mean - 4 * sd, mean + 4 * sd)
    if times:
        axes.plot(times, values, color="#263238", linewidth=0.9, marker="o", markersize=4)
        for point, when, value in zip(chart.points, times, values, strict=True):
            if not point.rules:
                continue
            colour = REJECT_COLOUR if point.rejected else WARNING_COLOUR
            axes.plot([when], [value], marker="o", markersize=9, color=colour, fillstyle="none")
            axes.annotate(
                ", ".join(point.rules),
                (when, value),
                textcoords="offset points",
                xytext=(0, 9),
                ha="center",
                fontsize=7,
                color=colour,
            )
        if mean is not None and sd is not None:
            low, high = axes.get_ylim()
            axes.set_ylim(min(low, min(values) - sd / 2), max(high, max(values) + sd / 2))
    else:
        axes.text(0.5, 0.5, "No QC results in this period", transform=axes.transAxes, ha="center")
    locator = mdates.AutoDateLocator(tz=IST)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%d %b %H:%M", tz=IST))
    axes.set_xlabel("Run time (IST)", fontsize=8)
    axes.set_ylabel(chart.unit or "value")
    axes.grid(axis="x", color="#eceff1", linewidth=0.6)
    figure.autofmt_xdate(rotation=30)
    buffer = io.BytesIO()
    if fmt == "svg":
        FigureCanvasSVG(figure).print_svg(buffer, metadata={"Date": None})
    else:
        FigureCanvasAgg(figure).print_png(buffer, metadata={"Software": "Nidaan"})
    return buffer.getvalue()


def _label(axes: object, level: float, text: str) -> None:
    axes.annotate(  # type: ignore[attr-defined]
        text,
        xy=(1.0, level),
        xycoords=("axes fraction", "data"),
        xytext=(4, 0),
        textcoords="offset points",
        va="center",
        fontsize=7,
        color="#4b5b66",
    )


async def lot_chart(
    session: AsyncSession,
    caller: Principal,
    lot_id: uuid.UUID,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 400,
) -> ChartData:
    """The chart data of one lot: its results in the period (default: the last ``limit``),
    each with the rules it broke."""
    from nidaan.qc.service import qc_service  # the service renders nothing; charts read it

    lot = await qc_service.get_lot(session, caller, lot_id)
    org = caller.organisation_id
    statement = qc_service.results_statement(org, lot_id=lot.id, since=since, until=until)
    rows = list(
        await session.scalars(
            statement.order_by(QcResult.measured_at.desc(), QcResult.id.desc()).limit(limit)
        )
    )
    rows.reverse()
    violations = await qc_service.violations_of(session, org, [r.id for r in rows])
    material = await session.get(QcMaterial, lot.material_id)
    test = await session.get(CatalogTest, lot.test_id)
    instrument = await session.get(Instrument, lot.instrument_id)
    assert material is not None
    assert test is not None
    assert instrument is not None
    mean, sd, provisional = lot.mean, lot.sd, False
    if mean is None or sd is None:
        figures = domain.stats([r.value for r in rows])
        mean, sd, provisional = figures.mean, figures.sd, True
    points = [
        ChartPoint(
            r.measured_at,
            r.value,
            tuple(v.rule for v in violations[r.id]),
            any(v.severity == domain.Severity.REJECT for v in violations[r.id]),
        )
        for r in rows
    ]
    target = (
        f"target {lot.target_source}: mean {mean:.4g}, SD {sd:.4g}"
        if mean is not None and sd is not None
        else "no target yet"
    )
    return ChartData(
        title=f"Levey-Jennings: {test.code} ({test.name}) on {instrument.name}",
        subtitle=(
            f"{material.name} level {material.level}, lot {lot.lot_number} "
            f"(control id {lot.control_id}, {lot.state}); {target}"
            + ("; provisional (lot establishing)" if provisional else "")
        ),
        unit=test.unit,
        mean=mean,
        sd=sd,
        points=points,
        provisional=provisional,
    )
