"""`make bench`: every benchmark in one run, one table of figures beside their references.

Each benchmark runs as its own process (its own output scrolls by as it runs); this script then
prints one table — figure, this run, the reference measured in the same run (DuckDB for the batch
job, the raw producer for the API), the previous run's figure from `bench/results.json` if there
is one, and the target from issue #15 — and writes every figure, with the load average and core
count, to `bench/results.json`.

It needs no running stack: the stack benchmark starts the full default stack of its own (ports
+30000, a fresh run folder), runs `pinpipe demo` on it and stops it; the API and stream
benchmarks run on a quiet stack of their own (ports +31000: no feeds, stream job or Airflow),
stopped at the end. Sizes: `--rows` (repeatable) for the batch job, default 100,000 and 1,000,000
rows per topic; `--rows 10000000` adds the largest size (about 30 min, half of it generating
10 GB of JSON lines, kept in the work folder for later runs). A size measured by an earlier run
and not rerun stays in the table and the JSON with the date it was measured.

    uv run python bench/run_all.py
    uv run python bench/run_all.py --rows 100000 --no-stack
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH.parent
RESULTS = BENCH / "results.json"
STACK_PORT_OFFSET = 30000
QUIET_PORT_OFFSET = 31000
DEMO_RECORDS = 3000
for folder in (PROJECT_ROOT, BENCH):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench_stack import stack_env  # noqa: E402  (after the path set-up above)

Row = tuple[str, str, str, str, str]


def _run(arguments: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a benchmark, its output passing through; returns (exit code, its last line)."""
    process = subprocess.Popen(
        arguments, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True, bufsize=1, env=env
    )
    last = ""
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        if line.strip():
            last = line.strip()
    return process.wait(), last


def _figures(arguments: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a benchmark that prints one JSON object last; its figures, or the exit code."""
    code, last = _run(arguments, env)
    if code != 0:
        return {"error": f"exit {code}"}
    try:
        return dict(json.loads(last))
    except ValueError:
        return {"error": f"no figures in its last line: {last[:200]}"}


@contextmanager
def quiet_stack() -> Iterator[dict[str, str]]:
    """A local stack of its own with no feeds, stream job or Airflow; yields its environment."""
    run_dir = Path(tempfile.mkdtemp(prefix="pinpipe-bench-quiet-")) / "run"
    env = stack_env(QUIET_PORT_OFFSET, run_dir, airflow=False, stream=False, feeds=False)
    pinpipe = [sys.executable, "-m", "pipeline.cli"]
    try:
        code, _ = _run([*pinpipe, "up"], env)
        if code != 0:
            raise RuntimeError(f"the quiet stack did not start (exit {code})")
        yield env
    finally:
        _run([*pinpipe, "down"], env)
        shutil.rmtree(run_dir.parent, ignore_errors=True)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f} s"


def _number(value: float | None, unit: str = "") -> str:
    return "" if value is None else f"{value:,.0f}{unit}"


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


def carry_forward(batch: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Batch sizes an earlier run measured and this one did not, kept with their date."""
    sizes = batch.setdefault("sizes", {})
    earlier = _dig(previous, "batch", "sizes") or {}
    for size, result in earlier.items():
        if size not in sizes:
            measured = result.get("measured_at") or previous.get("measured_at")
            sizes[size] = {**result, "measured_at": measured}
    for size, result in sizes.items():
        if "measured_at" not in result:
            sizes[size] = {**result, "measured_at": None}  # this run's
    return batch


def _batch_target(rows: int) -> str:
    """Issue #15's target for a batch size."""
    if rows <= 100_000:
        return "≤ 10 s"
    return "≤ 10x DuckDB" if rows < 10_000_000 else "≤ 8x DuckDB"


def batch_rows(figures: dict[str, Any], previous: dict[str, Any]) -> list[Row]:
    """Table rows for the batch figures: (figure, this run, reference, previous run, target)."""
    rows: list[Row] = []
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
    for size, result in sorted(figures.get("sizes", {}).items(), key=lambda item: int(item[0])):
        spark, duck = result.get("spark+delta", {}), result.get("duckdb", {})
        job, reference = spark.get("job_seconds"), duck.get("job_seconds")
        ratio = f" ({job / reference:.1f}x DuckDB)" if job and reference else ""
        same = "" if result.get("same_results") else "; RESULTS DIFFER"
        when = f"; measured {result['measured_at'][:10]}" if result.get("measured_at") else ""
        rows.append(
            (
                f"batch, {int(size):,} rows/topic (peak RSS "
                f"{spark.get('peak_rss_bytes', 0) / 2**30:.1f} GiB){same}{when}",
                f"{_seconds(job)}{ratio}",
                f"DuckDB {_seconds(reference)}",
                _seconds(_dig(previous, "batch", "sizes", size, "spark+delta", "job_seconds")),
                _batch_target(int(size)),
            )
        )
        increment = spark.get("increment_seconds")
        if increment is not None and job:
            rows.append(
                (
                    f"batch, second run with {result.get('increment_rows', 0):,} new rows/topic "
                    f"on {int(size):,}{when}",
                    f"{_seconds(increment)} ({increment / job:.0%} of full)",
                    f"nothing new: {_seconds(spark.get('unchanged_seconds'))}",
                    _seconds(
                        _dig(previous, "batch", "sizes", size, "spark+delta", "increment_seconds")
                    ),
                    "≤ 10 % of a full run",
                )
            )
    return rows


def _memory(stack: dict[str, Any]) -> str:
    """The stack's summed RSS when ready / after the demo / before down, in MB ("" if unknown)."""
    if not stack.get("rss_ready_mb"):
        return ""
    samples = (stack["rss_ready_mb"], _dig(stack, "demo", "rss_after_mb"),
               stack.get("rss_before_down_mb"))  # fmt: skip
    return " / ".join(_number(sum(rss.values()) if rss else None) for rss in samples)


def stack_rows(stack: dict[str, Any], previous: dict[str, Any]) -> list[Row]:
    """Rows for `pinpipe up`, the stack's memory, `pinpipe demo` and `pinpipe down`."""
    if "error" in stack:
        return [("stack, demo (bench/bench_stack.py)", f"failed: {stack['error']}", "", "", "")]
    before = previous.get("stack", {})
    ready = stack.get("ready_s", {})
    slowest = max(ready.items(), key=lambda item: item[1]) if ready else ("", 0.0)
    demo, demo_before = stack.get("demo", {}), before.get("demo", {})
    dag_s = next((s for step, s in demo.get("steps_s", {}).items() if "DAG" in step), None)
    tasks = ", ".join(f"{task} {s:.0f}" for task, s in demo.get("tasks_s", {}).items())
    steps = f"DAG run {_seconds(dag_s)}: {tasks}" if dag_s is not None else ""
    memory, memory_before = _memory(stack), _memory(before)
    return [
        ("`pinpipe up` to ready, default components", _seconds(stack.get("up_s")),
         f"slowest: {slowest[0]} {slowest[1]:.1f} s", _seconds(before.get("up_s")), "≤ 45 s"),
        ("stack memory, sum of RSS: when ready / after the demo / before down", f"{memory} MB",
         f"largest: {_largest(stack.get('rss_before_down_mb'))}",
         f"{memory_before} MB" if memory_before else "",
         "≤ 3,500 MB, flat"),
        (f"`pinpipe demo` N={demo.get('records', DEMO_RECORDS):,} on the running stack",
         _seconds(demo.get("seconds")), steps, _seconds(demo_before.get("seconds")), "≤ 90 s"),
        ("`pinpipe down` (issue #14)", _seconds(stack.get("down_s")),
         f"SIGKILLs: {len(stack.get('sigkill', []))}", _seconds(before.get("down_s")), "< 20 s"),
    ]  # fmt: skip


def _largest(rss: dict[str, int] | None) -> str:
    if not rss:
        return ""
    name, mb = max(rss.items(), key=lambda item: item[1])
    return f"{name} {mb:,} MB"


def api_rows(api: dict[str, Any], previous: dict[str, Any]) -> list[Row]:
    """Rows for the ingest API beside the raw producer on the same broker."""
    if "error" in api:
        return [("API (bench/bench_api.py)", f"failed: {api['error']}", "", "", "")]
    before = previous.get("api", {})
    raw, batched = api.get("raw_records_per_s"), api.get("batched_records_per_s")
    share = f" ({batched / raw:.0%} of raw)" if raw and batched else ""
    rate = api.get("latency_rate_per_s", 0)
    return [
        (f"API, {api.get('batch_records_per_request')} records/request, "
         f"{api.get('batched_clients')} clients", f"{_number(batched)} rec/s{share}",
         f"raw producer {_number(raw)} rec/s", _number(before.get("batched_records_per_s")),
         "≥ 50 % of raw"),
        (f"API, 1 record/request, {api.get('single_clients')} clients",
         f"{_number(api.get('single_requests_per_s'))} req/s",
         f"API CPU {_number(api.get('single_cpu_us_per_request'))} µs/request",
         _number(before.get("single_requests_per_s")), "≥ 3,000 req/s"),
        (f"API, 1 record/request at {rate:,.0f} req/s: p50 / p99",
         f"{api.get('latency_p50_ms')} / {api.get('latency_p99_ms')} ms",
         f"{api.get('latency_failed')} of {api.get('latency_sent')} failed",
         str(before.get("latency_p99_ms") or ""), "p99 < 20 ms"),
    ]  # fmt: skip


def stream_rows(stream: dict[str, Any], previous: dict[str, Any]) -> list[Row]:
    """Rows for the stream job: latency, sustained rate, memory."""
    if "error" in stream:
        return [("stream (bench/bench_stream.py)", f"failed: {stream['error']}", "", "", "")]
    before = previous.get("stream", {})
    phases = stream.get("micro_batch_median_s", {})
    return [
        (f"stream: API accept → readable, p95 ({stream.get('latency_rate_rows_per_s'):g} rows/s)",
         f"{stream.get('latency_p95_s')} s", f"p50 {stream.get('latency_p50_s')} s; "
         f"micro-batch median {phases.get('triggerExecution')} s, of it writing (addBatch) "
         f"{phases.get('addBatch')} s",
         str(before.get("latency_p95_s") or ""), "≤ 3 s"),
        (f"stream: sustained post → readable ({stream.get('throughput_rows'):,} rows)",
         f"{_number(stream.get('end_to_end_rows_per_s'))} rows/s",
         f"API posting {_number(stream.get('api_post_rows_per_s'))} rows/s "
         f"({stream.get('api_post_retries', 0)} requests retried after a 503); job CPU "
         f"{stream.get('job_cpu_ms_per_1000_rows')} ms/1,000 rows",
         _number(before.get("end_to_end_rows_per_s")), "≥ 10,000 rows/s"),
        ("stream job RSS, peak / end (driver + JVM + Python workers)",
         f"{_number(stream.get('job_peak_rss_mb'))} / {_number(stream.get('job_end_rss_mb'))} MB",
         "", _number(before.get("job_peak_rss_mb"), " MB"), "≤ 1,536 MB, flat"),
    ]  # fmt: skip


def main(
    rows: Annotated[
        list[int] | None, typer.Option("--rows", help="batch sizes, rows per topic (repeatable)")
    ] = None,
    stack: Annotated[
        bool, typer.Option(help="also the stack, demo, API and stream benchmarks")
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
    figures["batch"] = (
        carry_forward(_previous(batch_json), previous) if code == 0 else {"error": f"exit {code}"}
    )
    batch_json.unlink(missing_ok=True)

    if stack:
        figures["stack"] = _figures(
            [python, str(BENCH / "bench_stack.py"), "--port-offset", str(STACK_PORT_OFFSET),
             "--demo", str(DEMO_RECORDS), "--up-for", "60"]
        )  # fmt: skip
        try:
            with quiet_stack() as env:
                figures["api"] = _figures(
                    [python, str(BENCH / "bench_api.py"), "--records", "500000",
                     "--rate", "1000", "--duration", "5"], env
                )  # fmt: skip
                figures["stream"] = _figures([python, str(BENCH / "bench_stream.py")], env)
        except RuntimeError as failed:
            figures["api"] = figures["stream"] = {"error": str(failed)}
    figures["load_after"] = os.getloadavg()
    figures["seconds"] = round(time.monotonic() - started)

    table = Table(title="make bench: figures beside their references (issue #15 targets)")
    for column in ("figure", "this run", "reference, same run", "previous run", "target"):
        table.add_column(column, overflow="fold")
    table_rows = batch_rows(figures.get("batch", {}), previous)
    if stack:
        table_rows += stack_rows(figures["stack"], previous)
        table_rows += api_rows(figures["api"], previous)
        table_rows += stream_rows(figures["stream"], previous)
    for row in table_rows:
        table.add_row(*row)
    console = Console(width=160)
    console.print(table)
    load = " ".join(f"{value:.1f}" for value in figures["load_after"])
    console.print(f"{figures['cores']} cores; load average after the run {load}")
    results.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    console.print(f"figures written to {results}")


if __name__ == "__main__":
    typer.run(main)
