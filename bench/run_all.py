"""`make bench`: every benchmark in one run, one table of figures beside their references.

Each benchmark runs as its own process (its own output scrolls by as it runs); this script then
prints one table — figure, this run, the reference measured in the same run (DuckDB for the batch
job), the previous run's figure from `bench/results.json` if there is one, and the target from
issue #15 — and writes every figure, with the load average and core count, to
`bench/results.json`.

The API and stream benchmarks need the local stack (`make up`); without it they are listed as
not run. Sizes: `--rows` (repeatable) for the batch job, default 100,000 and 1,000,000 rows per
topic; `--rows 10000000` adds the largest size (about 15 min and 10 GB of landed JSON).

    uv run python bench/run_all.py
    uv run python bench/run_all.py --rows 100000 --no-stack
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH.parent
RESULTS = BENCH / "results.json"
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))


def _run(arguments: list[str]) -> tuple[int, str]:
    """Run a benchmark, its output passing through; returns (exit code, its last line)."""
    process = subprocess.Popen(
        arguments, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    last = ""
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        if line.strip():
            last = line.strip()
    return process.wait(), last


def _stack_is_up() -> bool:
    import requests

    from pipeline.config import get_settings

    try:
        return requests.get(f"{get_settings().api_url}/readyz", timeout=2).ok
    except requests.RequestException:
        return False


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f} s"


def _previous(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _dig(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def batch_rows(figures: dict[str, Any], previous: dict[str, Any]) -> list[tuple[str, ...]]:
    """Table rows for the batch figures: (figure, this run, reference, previous run, target)."""
    rows: list[tuple[str, ...]] = []
    empty = figures.get("empty", {})
    rows.append(
        (
            "batch on empty input (fixed cost of one run; session start apart)",
            _seconds(empty.get("job_seconds")),
            f"session start {_seconds(empty.get('session_seconds'))}",
            _seconds(_dig(previous, "batch", "empty", "job_seconds")),
            "≤ 8 s",
        )
    )
    for size, result in figures.get("sizes", {}).items():
        spark, duck = result.get("spark+delta", {}), result.get("duckdb", {})
        job, reference = spark.get("job_seconds"), duck.get("job_seconds")
        ratio = f" ({job / reference:.1f}x DuckDB)" if job and reference else ""
        target = "≤ 10 s" if int(size) <= 100_000 else "≤ 10x DuckDB"
        same = "" if result.get("same_results") else "; RESULTS DIFFER"
        rows.append(
            (
                f"batch, {int(size):,} rows/topic (peak RSS "
                f"{spark.get('peak_rss_bytes', 0) / 2**30:.1f} GiB){same}",
                f"{_seconds(job)}{ratio}",
                f"DuckDB {_seconds(reference)}",
                _seconds(_dig(previous, "batch", "sizes", size, "spark+delta", "job_seconds")),
                target,
            )
        )
        increment = spark.get("increment_seconds")
        if increment is not None and job:
            rows.append(
                (
                    f"batch, second run with {result.get('increment_rows', 0):,} new rows/topic "
                    f"on {int(size):,}",
                    f"{_seconds(increment)} ({increment / job:.0%} of full)",
                    f"nothing new: {_seconds(spark.get('unchanged_seconds'))}",
                    _seconds(
                        _dig(previous, "batch", "sizes", size, "spark+delta", "increment_seconds")
                    ),
                    "≤ 10 % of a full run",
                )
            )
    return rows


def main(
    rows: Annotated[
        list[int] | None, typer.Option("--rows", help="batch sizes, rows per topic (repeatable)")
    ] = None,
    stack: Annotated[
        bool, typer.Option(help="also run the API and stream benchmarks (needs `make up`)")
    ] = True,
    results: Annotated[Path, typer.Option(help="where the figures go")] = RESULTS,
    workdir: Annotated[
        Path | None, typer.Option(help="landed data and lakes (default: bench_batch's)")
    ] = None,
) -> None:
    """Run the benchmarks and print one table of figures beside their references."""
    previous = _previous(results)
    python = sys.executable
    figures: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load_before": os.getloadavg(),
    }
    started = time.monotonic()

    batch_json = BENCH / ".batch-figures.json"
    sizes = [str(size) for size in (rows or [100_000, 1_000_000])]
    code, _ = _run(
        [python, str(BENCH / "bench_batch.py"), *[f"--rows={size}" for size in sizes],
         "--json-out", str(batch_json), *(["--workdir", str(workdir)] if workdir else [])]
    )  # fmt: skip
    figures["batch"] = _previous(batch_json) if code == 0 else {"error": f"exit {code}"}
    batch_json.unlink(missing_ok=True)

    not_run: list[str] = []
    if stack and _stack_is_up():
        code, last = _run([python, str(BENCH / "bench_stream.py")])
        figures["stream"] = json.loads(last) if code == 0 else {"error": f"exit {code}"}
        code, _ = _run([python, str(BENCH / "bench_api.py"), "--records", "500000"])
        figures["api"] = {"exit_code": code, "figures": "printed above"}
    else:
        not_run = ["API (bench/bench_api.py)", "stream (bench/bench_stream.py)"]
    figures["load_after"] = os.getloadavg()
    figures["seconds"] = round(time.monotonic() - started)

    table = Table(title="make bench: figures beside their references (issue #15 targets)")
    for column in ("figure", "this run", "reference, same run", "previous run", "target"):
        table.add_column(column, overflow="fold")
    for row in batch_rows(figures.get("batch", {}), previous):
        table.add_row(*row)
    stream = figures.get("stream", {})
    if "latency_p95_s" in stream:
        table.add_row("stream: API accept → readable, p95", f"{stream['latency_p95_s']} s", "",
                      str(_dig(previous, "stream", "latency_p95_s") or ""), "≤ 3 s")  # fmt: skip
    if "job_peak_rss_mb" in stream:
        keys = ("job_peak_rss_mb", "job_end_rss_mb")
        now = " / ".join(str(stream.get(key, "?")) for key in keys)
        before = " / ".join(str(_dig(previous, "stream", key) or "?") for key in keys)
        table.add_row("stream job RSS, peak / end (driver + JVM + Python workers)",
                      f"{now} MB", "", before, "≤ 1,536 MB, flat")  # fmt: skip
    for name in not_run:
        table.add_row(f"{name}: not run, the stack is down (`make up`)", "", "", "", "")
    console = Console(width=160)
    console.print(table)
    load = " ".join(f"{value:.1f}" for value in figures["load_after"])
    console.print(f"{figures['cores']} cores; load average after the run {load}")
    results.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    console.print(f"figures written to {results}")


if __name__ == "__main__":
    typer.run(main)
