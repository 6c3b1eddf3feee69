"""``nidaan autoverify``: simulate rule sets over history, train and evaluate the second opinion.

nidaan autoverify simulate --organisation demo --since 2025-01-01 --rules rules.json
nidaan autoverify model evaluate              # on the shipped generated population
nidaan autoverify model train --organisation demo [--generated]
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any

import typer

from nidaan.command_line import fail, open_database
from nidaan.config import get_settings
from nidaan.kit.time import IST

autoverify_app = typer.Typer(
    help="Autoverification: simulate rules over history, train the second opinion.",
    no_args_is_help=True,
)
model_app = typer.Typer(help="The learned second opinion (hold-only).", no_args_is_help=True)
autoverify_app.add_typer(model_app, name="model")


def _when(text: str, name: str) -> datetime:
    """``2025-01-01`` (midnight in the lab's zone) or an ISO date-time."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=IST)
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--{name} must be a date (2025-01-01) or a date-time (2025-01-01T08:00+05:30)")
    return moment if moment.tzinfo else moment.replace(tzinfo=IST)


def load_rules(path: Path) -> dict[str, Any]:
    """A rules file: ``{"TEST_CODE": [rules...], ...}`` as JSON, or YAML (.yaml/.yml)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as error:
        fail(
            f"{path} is not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: {error}"
        )
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        fail(f'{path} must map test codes to lists of rules, e.g. {{"GLUR": [...]}}')
    return data


@autoverify_app.command("simulate")
def simulate_command(
    organisation: Annotated[str, typer.Option("--organisation", "-o", help="Slug or id")],
    since: Annotated[str, typer.Option(help="From (date or ISO date-time; IST if no zone)")],
    rules: Annotated[
        Path | None,
        typer.Option(help="JSON/YAML file {TEST_CODE: [rules]}; default: the lab's rule sets"),
    ] = None,
    until: Annotated[str | None, typer.Option(help="To (default now)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """What the rules would have autoverified over a period, and what they would have
    wrongly released (results people later corrected). Nothing is changed."""
    settings = get_settings()
    spec = load_rules(rules) if rules is not None else None
    start = _when(since, "since")
    end = _when(until, "until") if until else None
    open_database(settings)
    report = asyncio.run(_simulate(organisation, start, end, spec))
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    typer.echo(format_report(report))


async def _simulate(
    organisation: str, since: datetime, until: datetime | None, spec: dict[str, Any] | None
) -> dict[str, Any]:
    from nidaan.autoverify.simulation import simulate
    from nidaan.kit.db import dispose, session_scope
    from nidaan.kit.errors import NidaanError
    from nidaan.tenancy.service import tenancy_service

    try:
        async with session_scope(get_settings()) as session:
            org = await tenancy_service.find_organisation(session, organisation)
            if org is None:
                fail(f"no organisation {organisation!r}")
            assert org is not None
            return (await simulate(session, org.id, since, until, spec)).as_dict()
    except NidaanError as error:
        fail(error.detail)
    finally:
        await dispose()
    raise AssertionError("unreachable")


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"Autoverification simulation {report['since']:%Y-%m-%d %H:%M} to "
        f"{report['until']:%Y-%m-%d %H:%M}",
        f"  results of tests with rules: {report['results']}",
        f"  would have been autoverified: {report['autoverified']} ({report['percent']}%)",
        f"  wrongly released (people corrected them later): {len(report['wrongly_released'])}",
        "",
        f"  {'test':<10} {'results':>8} {'autoverified':>13} {'%':>6} {'wrong':>6}",
    ]
    for row in report["by_test"]:
        lines.append(
            f"  {row['test_code']:<10} {row['results']:>8} {row['autoverified']:>13} "
            f"{row['percent']:>6} {row['wrongly_released']:>6}"
        )
    if report["stopped_by"]:
        lines += ["", "  stopped by (first rule that did not hold):"]
        lines += [f"    {kind:<24} {count:>6}" for kind, count in report["stopped_by"].items()]
    if report["wrongly_released"]:
        lines += ["", "  would have been wrongly released:"]
        for item in report["wrongly_released"]:
            lines.append(
                f"    {item['entered_at']:%Y-%m-%d %H:%M} {item['test_code']} {item['value']}: "
                f"{item['why']} (result {item['result_id']})"
            )
    return "\n".join(lines)


@model_app.command("evaluate")
def model_evaluate(
    patients: Annotated[int, typer.Option(help="People in the generated population")] = 12000,
    seed: Annotated[int, typer.Option(help="Random seed of the population")] = 17,
    target_precision: Annotated[float, typer.Option(help="Precision the threshold aims at")] = 0.9,
) -> None:
    """Train and measure the second opinion on the generated labelled set (no database):
    precision and recall at the chosen threshold, recall per injected error."""
    from nidaan.autoverify.training import generate_population, labelled_set, train_and_evaluate

    cases = labelled_set(generate_population(patients, seed=seed), seed=seed + 1)
    _, evaluation = train_and_evaluate(cases, target_precision=target_precision)
    typer.echo(json.dumps({"cases": len(cases), **evaluation.as_dict()}, indent=2))


@model_app.command("train")
def model_train(
    organisation: Annotated[str, typer.Option("--organisation", "-o", help="Slug or id")],
    generated: Annotated[
        bool,
        typer.Option(help="Train on the generated population instead of the lab's history"),
    ] = False,
    patients: Annotated[int, typer.Option(help="Generated population size")] = 12000,
    minimum: Annotated[int, typer.Option(help="Fewest verified panels to train on")] = 500,
    target_precision: Annotated[float, typer.Option(help="Precision the threshold aims at")] = 0.9,
) -> None:
    """Train the second opinion on the lab's verified history (or the generated population)
    with injected errors, print precision and recall, and make it the lab's active model."""
    settings = get_settings()
    open_database(settings)
    metrics = asyncio.run(_train(organisation, generated, patients, minimum, target_precision))
    typer.echo(json.dumps(metrics, indent=2))


async def _train(
    organisation: str, generated: bool, patients: int, minimum: int, target_precision: float
) -> dict[str, Any]:
    from nidaan.audit.schemas import SYSTEM_ACTOR
    from nidaan.autoverify.history import verified_panels
    from nidaan.autoverify.service import autoverify_service
    from nidaan.autoverify.training import (
        clean_cases,
        generate_population,
        labelled_set,
        train_and_evaluate,
    )
    from nidaan.kit.db import dispose, session_scope
    from nidaan.tenancy.service import tenancy_service

    try:
        async with session_scope(get_settings()) as session:
            org = await tenancy_service.find_organisation(session, organisation)
            if org is None:
                fail(f"no organisation {organisation!r}")
            assert org is not None
            if generated:
                clean = generate_population(patients)
            else:
                panels = await verified_panels(session, org.id)
                if len(panels) < minimum:
                    fail(
                        f"only {len(panels)} verified panels in the history (need {minimum}); "
                        "train on the generated population with --generated until there are more"
                    )
                clean = clean_cases(panels)
            model, evaluation = await asyncio.to_thread(
                train_and_evaluate, labelled_set(clean), target_precision=target_precision
            )
            row = await autoverify_service.store_model(
                session,
                org.id,
                model,
                evaluation,
                trained_on="generated" if generated else "history",
                actor=SYSTEM_ACTOR,
            )
            return {"model_id": str(row.id), **evaluation.as_dict()}
    finally:
        await dispose()
