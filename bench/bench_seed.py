"""Benchmark `pinpipe seed`: rows per second and peak memory of a large generation.

    uv run python bench/bench_seed.py                 # 1,000,000 ids into a temporary SQLite file
    uv run python bench/bench_seed.py --rows 200000 --workers 0
    uv run python bench/bench_seed.py --url mysql+pymysql://user:pw@host/db

Peak RSS is reported for this process (reading the generated rows and inserting them) and for the
largest generator worker process. Prints one JSON object last, for scripts.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from pipeline.source import database
from pipeline.source.loader import seed_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=None, help="default: as `pinpipe seed`")
    parser.add_argument("--url", default=None, help="SQLAlchemy URL (default: a temporary SQLite)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = database.connect(url)
        started = time.perf_counter()
        counts = seed_database(
            engine,
            args.rows,
            seed=args.seed,
            batch_size=args.batch_size,
            workers=args.workers,
            replace=True,
        )
        elapsed = time.perf_counter() - started
        engine.dispose()
        size = Path(folder, "bench.db").stat().st_size if args.url is None else None

    # ru_maxrss is in KiB on Linux.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures = {
        "rows": counts["pin"],
        "table_rows": sum(counts.values()),
        "seconds": round(elapsed, 2),
        "rows_per_s": round(counts["pin"] / elapsed),
        "peak_rss_mb": round(own, 1),
        "peak_rss_worker_mb": round(children, 1),
        "database_mb": None if size is None else round(size / 2**20, 1),
    }
    print(
        f"seeded {figures['rows']:,} ids ({figures['table_rows']:,} table rows) in "
        f"{elapsed:,.1f} s: {figures['rows_per_s']:,} ids/s; peak RSS {own:,.0f} MB "
        f"(largest worker {children:,.0f} MB)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
