"""Report rendering benchmark: the English and Hindi sample reports, milliseconds per page.

Each measurement runs in a fresh process that renders the report once (warm-up: what a
long-lived worker has done before its first real report) and then --runs times, timing each
render from the document to the PDF bytes (template, layout, fonts, writing).

With --baseline REF (a commit, branch or tag), the same measurement is made in the same run
on REF's source (``git archive`` of ``src/`` into a temporary directory, put first on
PYTHONPATH), alternating baseline and current processes --rounds times so that the load of
a shared machine falls on both alike; the medians and their ratio are printed.

Run:  .venv/bin/python benchmarks/reports.py [--runs 10] [--rounds 2] [--baseline REF]
Target: median <= 100 ms per page on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = ("en", "hi")


def measure(runs: int) -> dict[str, dict[str, object]]:
    """In this process: {language: {"pages": n, "per_page": [seconds, ...]}}."""
    from nidaan.reports.render import render_pdf
    from nidaan.reports.sample import sample_document

    out: dict[str, dict[str, object]] = {}
    for language in LANGUAGES:
        document = sample_document(language)
        pages = render_pdf(document).page_count  # warm-up
        per_page = []
        for _ in range(runs):
            started = time.perf_counter()
            rendered = render_pdf(document)
            per_page.append((time.perf_counter() - started) / rendered.page_count)
        out[language] = {"pages": pages, "per_page": per_page}
    return out


def measure_in_subprocess(runs: int, source: Path | None) -> dict[str, dict[str, object]]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(source), env.get("PYTHONPATH"))))
    done = subprocess.run(
        [sys.executable, __file__, "--worker", "--runs", str(runs)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def export_source(ref: str, into: Path) -> Path:
    """``src/`` of ``ref`` (committed state) unpacked under ``into``; returns that src dir."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def summary(per_page: list[float]) -> str:
    ordered = sorted(per_page)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return f"median {statistics.median(ordered) * 1000:.0f} ms/page, p95 {p95 * 1000:.0f} ms/page"


def main(runs: int, rounds: int, baseline: str | None) -> None:
    results: dict[str, dict[str, list[float]]] = {"current": {}, "baseline": {}}
    pages: dict[str, dict[str, int]] = {"current": {}, "baseline": {}}
    with tempfile.TemporaryDirectory(prefix="nidaan-bench-reports-") as tmp:
        sources: dict[str, Path | None] = {"current": None}
        if baseline:
            sources = {"baseline": export_source(baseline, Path(tmp)), "current": None}
        for _ in range(rounds):
            for name, source in sources.items():
                for language, figures in measure_in_subprocess(runs, source).items():
                    results[name].setdefault(language, []).extend(figures["per_page"])  # type: ignore[arg-type]
                    pages[name][language] = figures["pages"]  # type: ignore[assignment]
    print(f"report rendering, {runs} renders x {rounds} rounds per report, {os.cpu_count()} cores")
    for language in LANGUAGES:
        current = results["current"][language]
        line = f"  {language} ({pages['current'][language]} pages): current {summary(current)}"
        if baseline:
            before = results["baseline"][language]
            ratio = statistics.median(before) / statistics.median(current)
            line += (
                f" | baseline {baseline} ({pages['baseline'][language]} pages): "
                f"{summary(before)} | {ratio:.1f}x faster"
            )
        verdict = "meets" if statistics.median(current) <= 0.100 else "MISSES"
        print(line + f" | target <= 100 ms/page: {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="renders per report and process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per source (default 2)")
    parser.add_argument("--baseline", help="git ref to measure beside the working tree")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.runs)))
    else:
        main(args.runs, args.rounds, args.baseline)
