"""Benchmark the local stack's life: `pinpipe up`, its memory, `pinpipe demo`, `pinpipe down`.

    uv run python bench/bench_stack.py                   # the full default stack, ports +30000
    uv run python bench/bench_stack.py --port-offset 500 --no-airflow --no-stream
    uv run python bench/bench_stack.py --up-for 60       # let the feeds post a minute first
    uv run python bench/bench_stack.py --demo 3000       # `make demo` N=3000 on the running stack

Runs the real commands in a fresh run folder on ports apart from a developer's stack, as a user
would (each command's time includes its Python start-up). Memory is the sum of RSS over every
component's process tree (as `pinpipe status` shows it): when the stack is ready, after the demo,
and before `down`. `down` reports each component's stop time since its stop wave began and how
it ended; a SIGKILL is a fault and is flagged. Prints one JSON object last, for scripts. Issue #14
asks for `down` under 20 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.config.settings import local_port_variables

DEFAULT_PORTS = local_port_variables()
READY = re.compile(r"^» (\S+): ready \(([\d.]+)s\)", re.MULTILINE)
STOPPED = re.compile(r"^» (\S+): stopped \(([\d.]+)s, (.*)\)$", re.MULTILINE)
STACK_STOPPED = re.compile(r"stack stopped in ([\d.]+)s")
# the demo's step rules ("3/8 Posting ... records  12s": seconds since it began) and task lines
DEMO_STEP = re.compile(r"(\d+)/\d+ (\S.*?)\s{2,}(\d+)s")
DEMO_TASK = re.compile(r"^\s+(\w+): success \((\d+)s\)", re.MULTILINE)
COMPONENT_RSS = (
    "import json; from pipeline.config import get_settings; from pipeline.stack import stack; "
    "print(json.dumps({row.name: round(row.rss_mb) for row in stack.status(get_settings())}))"
)


class CommandFailed(Exception):
    pass


def pinpipe(env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise CommandFailed(f"pinpipe {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return seconds, result.stdout


def stack_env(
    port_offset: int,
    run_dir: Path,
    *,
    airflow: bool = True,
    stream: bool = True,
    feeds: bool = True,
) -> dict[str, str]:
    """The environment of a stack of its own: ports moved by `port_offset`, its own run folder."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PINPIPE_", "AWS_ENDPOINT"))},
        **{key: str(port + port_offset) for key, port in DEFAULT_PORTS.items()},
        "PINPIPE_RUN_DIR": str(run_dir),
        "PINPIPE_AIRFLOW_ENABLED": str(airflow).lower(),
        "PINPIPE_STREAM_ENABLED": str(stream).lower(),
        "COLUMNS": "200",
    }
    if not feeds:
        env["PINPIPE_FEED_IDS_PER_SECOND"] = "0"
    return env


def demo_steps(output: str, total_s: float) -> dict[str, float]:
    """Seconds per demo step, from the times its step rules print (since the demo began)."""
    starts = [(title, float(at)) for _, title, at in DEMO_STEP.findall(output)]
    ends = [at for _, at in starts[1:]] + [total_s]
    return {title: round(end - at, 1) for (title, at), end in zip(starts, ends, strict=True)}


def component_rss_mb(env: dict[str, str]) -> dict[str, int]:
    """Each component's RSS (its whole process tree), in MB."""
    result = subprocess.run(
        [sys.executable, "-c", COMPONENT_RSS], env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-offset", type=int, default=30000)
    parser.add_argument("--up-for", type=float, default=30.0, help="seconds between up and down")
    parser.add_argument("--no-airflow", action="store_true")
    parser.add_argument("--no-stream", action="store_true")
    parser.add_argument("--demo", type=int, default=0, help="run `pinpipe demo` with N records")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (its logs)")
    args = parser.parse_args()

    run_dir = Path(tempfile.mkdtemp(prefix="pinpipe-bench-stack-")) / "run"
    env = stack_env(
        args.port_offset, run_dir, airflow=not args.no_airflow, stream=not args.no_stream
    )
    demo: dict[str, Any] = {}
    try:
        up_seconds, up_out = pinpipe(env, "up")
        rss_ready = component_rss_mb(env)
        if args.demo:
            demo_seconds, demo_out = pinpipe(env, "demo", "--records", str(args.demo))
            demo = {
                "records": args.demo,
                "seconds": round(demo_seconds, 1),
                "steps_s": demo_steps(demo_out, demo_seconds),
                "tasks_s": {task: float(s) for task, s in DEMO_TASK.findall(demo_out)},
                "rss_after_mb": component_rss_mb(env),
            }
        time.sleep(args.up_for)
        rss_end = component_rss_mb(env)
    except CommandFailed as failed:
        pinpipe(env, "down")  # what did start
        raise SystemExit(str(failed)) from failed
    try:
        down_seconds, down_out = pinpipe(env, "down")
    finally:
        if not args.keep:
            shutil.rmtree(run_dir.parent, ignore_errors=True)
    stopped = [(name, float(s), outcome) for name, s, outcome in STOPPED.findall(down_out)]
    inside = STACK_STOPPED.search(down_out)
    result: dict[str, Any] = {
        "up_s": round(up_seconds, 1),
        "down_s": round(down_seconds, 1),
        "down_inside_s": float(inside.group(1)) if inside else None,
        "ready_s": {name: float(s) for name, s in READY.findall(up_out)},
        "rss_ready_mb": rss_ready,
        "rss_before_down_mb": rss_end,
        "demo": demo,
        "stop_s": {name: s for name, s, _ in stopped},
        "stop_outcome": {name: outcome for name, _, outcome in stopped},
        "sigkill": [name for name, _, outcome in stopped if "SIGKILL" in outcome],
        "load_average": os.getloadavg(),
    }
    print(f"up   {up_seconds:6.1f}s")
    for name, seconds in result["ready_s"].items():
        print(f"  {name:<20} ready after {seconds:6.1f}s")
    print(f"RSS when ready {sum(rss_ready.values()):,} MB: {rss_ready}")
    if demo:
        print(f"demo ({args.demo:,} records) {demo['seconds']:.1f}s: {demo['steps_s']}")
        print(f"RSS after the demo {sum(demo['rss_after_mb'].values()):,} MB")
    print(f"RSS before down {sum(rss_end.values()):,} MB: {rss_end}")
    print(f"down {down_seconds:6.1f}s (stack stopped in {result['down_inside_s']}s, the rest is "
          "the command's start-up)")  # fmt: skip
    for name, seconds, outcome in stopped:
        print(f"  {name:<20} stopped after {seconds:5.1f}s  {outcome}")
    print(f"load average {result['load_average']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
