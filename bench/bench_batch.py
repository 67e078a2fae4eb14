"""Benchmark of the batch job: Spark + Delta (the real job) next to DuckDB, same data, same queries.

For each size it lands N synthetic source rows per topic (ids drawn with replacement, as the
emulator does, with data contract §1's dirty values) as JSON lines in the S3 sink's folder layout,
then runs, each in its own process so memory is measured cleanly:

- spark:  `run_batch` (bronze → silver → gold, Delta tables) into an empty lake;
- duckdb: the same cleaning and nine queries as SQL over the same JSON lines, in memory.

It prints whole-job time, source rows per second, the peak memory of the process tree (the JVM
included) and whether both engines gave the same nine results.

    uv run python bench/bench_batch.py --rows 100000 --rows 1000000
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import psutil
import typer
from rich.console import Console
from rich.table import Table

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

PREFIX = "bench"
PARTITIONS = 3
LINES_PER_OBJECT = 50_000

CATEGORIES = (
    "art", "beauty", "christmas", "diy-and-crafts", "education", "event-planning", "finance",
    "home-decor", "mens-fashion", "quotes", "tattoos", "travel", "vehicles",
)  # fmt: skip
COUNTRIES = (
    "Afghanistan", "Albania", "Algeria", "Andorra", "Angola", "Antarctica (the territory South "
    "of 60 deg S)", "Argentina", "Armenia", "Aruba", "Australia", "Bangladesh", "Belgium",
    "Brazil", "Canada", "Chad", "Chile", "Cocos (Keeling) Islands", "Denmark", "Egypt", "France",
    "Germany", "India", "Japan", "Kenya", "Mexico", "Peru", "Poland", "Spain", "Togo", "Yemen",
)  # fmt: skip
FIRST_NAMES = ("Ann", "Bob", "Cara", "Dan", "Eve", "Finn", "Gia", "Hal", "Ivy", "Jon", "Kim", "Lou")
LAST_NAMES = ("Lee", "Ray", "Poe", "Fox", "Kim", "Orr", "Yu", "Diaz", "Hill", "Shaw", "Wong", "Ng")
POSTERS = tuple(f"{first} {last} Studio" for first in FIRST_NAMES for last in LAST_NAMES)

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


# -- synthetic landing data -----------------------------------------------------------------------


def _follower_count(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.03:
        return "User Info Error"
    if roll < 0.50:
        return str(rng.randint(0, 999))
    if roll < 0.85:
        return f"{rng.randint(1, 999)}k"
    if roll < 0.97:
        return f"{rng.randint(1, 99) / 10:g}M"
    return f"{rng.randint(1, 3)}B"


def _iso(rng: random.Random, first_year: int, last_year: int) -> str:
    """A moment in those years as ISO text, in the several spellings consumers must accept."""
    start = datetime(first_year, 1, 1, tzinfo=UTC)
    span = datetime(last_year + 1, 1, 1, tzinfo=UTC) - start
    moment = start + timedelta(seconds=rng.randrange(int(span.total_seconds())))
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    roll = rng.random()
    if roll < 0.05:
        return text.replace("T", " ")
    if roll < 0.08:
        return text + "Z"
    if roll < 0.10:
        return text + ".250+02:00"
    return text


def source_rows(ind: int) -> dict[str, dict[str, Any]]:
    """The pin, geo and user rows of one id; the same id always gives the same rows."""
    rng = random.Random(ind)
    category = rng.choice(CATEGORIES)
    story = rng.random() < 0.03  # a story-page pin carries several placeholders at once
    pin = {
        "index": ind,
        "unique_id": f"{rng.getrandbits(128):032x}",
        "title": "No Title Data Available" if story else f"{category.title()} idea {ind}",
        "description": "No description available Story format" if story else "A fine pin.",
        "poster_name": "User Info Error" if story else rng.choice(POSTERS),
        "follower_count": "User Info Error" if story else _follower_count(rng),
        "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e" if story else f"{category},ideas",
        "is_image_or_video": "multi-video(story page format)" if story else "image",
        "image_src": "Image src error." if story else f"https://i.pinimg.com/{ind}.jpg",
        "downloaded": 0 if story else 1,
        "save_location": f"Local save in /data/{category}",
        "category": category,
    }
    geo = {
        "ind": ind,
        "timestamp": _iso(rng, 2017, 2022),
        "latitude": round(rng.uniform(-90, 90), 5),
        "longitude": round(rng.uniform(-180, 180), 5),
        "country": rng.choice(COUNTRIES),
    }
    user = {
        "ind": ind,
        "first_name": rng.choice(FIRST_NAMES),
        "last_name": rng.choice(LAST_NAMES),
        "age": rng.randint(15, 70),
        "date_joined": _iso(rng, 2015, 2017),
    }
    return {"pin": pin, "geo": geo, "user": user}


def generate_landing(landing: Path, rows: int, seed: int = 7) -> None:
    """`rows` posts per topic, ids uniform with replacement over `rows` ids (like the emulator)."""
    done = landing / "_COMPLETE"
    if done.exists():
        return
    rng = random.Random(seed)
    ids = [rng.randint(1, rows) for _ in range(rows)]
    for table in ("pin", "geo", "user"):
        topic = f"{PREFIX}.{table}"
        for start in range(0, rows, LINES_PER_OBJECT):
            chunk = ids[start : start + LINES_PER_OBJECT]
            partition = (start // LINES_PER_OBJECT) % PARTITIONS
            folder = landing / "topics" / topic / f"partition={partition}"
            folder.mkdir(parents=True, exist_ok=True)
            lines = [json.dumps(source_rows(ind)[table]) for ind in chunk]
            name = f"{topic}+{partition}+{start:010d}.json"
            (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    done.touch()


# -- the two engines (each runs in a child process) ---------------------------------------------


def add_increment(landing: Path, rows: int, total: int, seed: int = 11) -> list[Path]:
    """`rows` more posts per topic as new objects after the existing ones (new offsets), ids
    drawn from the same range: some new ids, some repeated ones. Returns the objects written."""
    rng = random.Random(seed)
    ids = [rng.randint(1, total + rows) for _ in range(rows)]
    written = []
    for table in ("pin", "geo", "user"):
        topic = f"{PREFIX}.{table}"
        for start in range(0, rows, LINES_PER_OBJECT):
            chunk = ids[start : start + LINES_PER_OBJECT]
            partition = (start // LINES_PER_OBJECT) % PARTITIONS
            offset = total + start
            target = landing / "topics" / topic / f"partition={partition}"
            target = target / f"{topic}+{partition}+{offset:010d}.json"
            lines = [json.dumps(source_rows(ind)[table]) for ind in chunk]
            target.write_text("\n".join(lines) + "\n", encoding="utf-8")
            written.append(target)
    return written


@app.command("spark-child", hidden=True)
def spark_child(
    landing: Path,
    lake: Path,
    results: Path,
    driver_memory: str = "2g",
    increment_rows: int = 0,
    total_rows: int = 0,
) -> None:
    """The job into an empty lake; then, with `increment_rows`, a run over unchanged landing
    (nothing new) and a run after `increment_rows` more rows per topic landed."""
    started = time.perf_counter()
    from pipeline.config import get_settings
    from pipeline.config.settings import topic_names
    from pipeline.spark_session import get_spark
    from pipeline.transform.job import read_gold, run_batch, write_results_json

    settings = get_settings().model_copy(update={"spark_driver_memory": driver_memory})
    spark = get_spark("pinpipe-bench", settings)
    spark.sparkContext.setLogLevel("ERROR")
    figures = {"session_seconds": time.perf_counter() - started}
    started = time.perf_counter()
    run_batch(spark, str(landing), str(lake), topic_names(PREFIX))
    figures["job_seconds"] = time.perf_counter() - started
    write_results_json(read_gold(spark, str(lake)), results)
    if increment_rows:
        started = time.perf_counter()
        run_batch(spark, str(landing), str(lake), topic_names(PREFIX))
        figures["unchanged_seconds"] = time.perf_counter() - started
        written = add_increment(landing, increment_rows, total_rows)
        try:
            started = time.perf_counter()
            run_batch(spark, str(landing), str(lake), topic_names(PREFIX))
            figures["increment_seconds"] = time.perf_counter() - started
        finally:
            for path in written:
                path.unlink()
    print(json.dumps(figures))


DUCKDB_SQL = r"""
SET TimeZone = 'UTC';
CREATE MACRO clean_text(v) AS
    nullif(regexp_replace(v, '^\s+|\s+$', '', 'g'), '');
CREATE MACRO utc_ts(v) AS
    try_cast(CASE WHEN regexp_matches(v, ':\d{2}(\.\d*)?\s*(Z|[+-]\d{2}(:?\d{2})?)$')
                  THEN v ELSE v || 'Z' END AS TIMESTAMPTZ);
CREATE MACRO age_group(a) AS CASE
    WHEN a BETWEEN 18 AND 24 THEN '18-24' WHEN a BETWEEN 25 AND 35 THEN '25-35'
    WHEN a BETWEEN 36 AND 50 THEN '36-50' WHEN a > 50 THEN '+50' END;

CREATE TABLE pin AS
WITH raw AS (
    SELECT * FROM read_json('@LANDING@/topics/@PREFIX@.pin/partition=*/*',
        format = 'newline_delimited', ignore_errors = true, filename = true,
        columns = {index: 'INTEGER', unique_id: 'VARCHAR', title: 'VARCHAR',
            description: 'VARCHAR', poster_name: 'VARCHAR', follower_count: 'VARCHAR',
            tag_list: 'VARCHAR', is_image_or_video: 'VARCHAR', image_src: 'VARCHAR',
            downloaded: 'INTEGER', save_location: 'VARCHAR', category: 'VARCHAR'})
    WHERE "index" IS NOT NULL
), latest AS (
    SELECT * FROM raw QUALIFY row_number() OVER (PARTITION BY "index" ORDER BY filename DESC) = 1
), cleaned AS (
    SELECT "index" AS ind,
        clean_text(poster_name) AS poster_name,
        clean_text(follower_count) AS follower_text,
        clean_text(category) AS category
    FROM latest
)
SELECT ind,
    CASE WHEN poster_name = 'User Info Error' THEN NULL ELSE poster_name END AS poster_name,
    CASE WHEN regexp_matches(follower_text, '^(\d{1,18}(\.\d{1,9})?)\s*([kKmMbB]?)$') THEN
        round(try_cast(regexp_extract(follower_text, '^(\d{1,18}(\.\d{1,9})?)', 1)
                       AS DECIMAL(27, 9))
              * CASE lower(regexp_extract(follower_text, '([kKmMbB])$', 1))
                    WHEN 'k' THEN 1000 WHEN 'm' THEN 1000000 WHEN 'b' THEN 1000000000
                    ELSE 1 END)::BIGINT
    END AS follower_count,
    category
FROM cleaned;

CREATE TABLE geo AS
SELECT ind, clean_text(country) AS country, utc_ts("timestamp") AS "timestamp"
FROM read_json('@LANDING@/topics/@PREFIX@.geo/partition=*/*',
    format = 'newline_delimited', ignore_errors = true, filename = true,
    columns = {ind: 'INTEGER', "timestamp": 'VARCHAR', latitude: 'DOUBLE',
        longitude: 'DOUBLE', country: 'VARCHAR'})
WHERE ind IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY ind ORDER BY filename DESC) = 1;

CREATE TABLE usr AS
SELECT ind, age, utc_ts(date_joined) AS date_joined
FROM read_json('@LANDING@/topics/@PREFIX@.user/partition=*/*',
    format = 'newline_delimited', ignore_errors = true, filename = true,
    columns = {ind: 'INTEGER', first_name: 'VARCHAR', last_name: 'VARCHAR', age: 'INTEGER',
        date_joined: 'VARCHAR'})
WHERE ind IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY ind ORDER BY filename DESC) = 1;
"""

DUCKDB_QUERIES: dict[str, str] = {
    "q1_top_category_by_country": """
        SELECT country, category, count(*) AS category_count
        FROM pin JOIN geo USING (ind) WHERE category IS NOT NULL AND country IS NOT NULL
        GROUP BY country, category
        QUALIFY row_number() OVER (PARTITION BY country
                                   ORDER BY category_count DESC, category) = 1
        ORDER BY country""",
    "q2_top_category_by_year": """
        SELECT year("timestamp") AS post_year, category, count(*) AS category_count
        FROM pin JOIN geo USING (ind)
        WHERE category IS NOT NULL AND year("timestamp") BETWEEN 2018 AND 2022
        GROUP BY post_year, category
        QUALIFY row_number() OVER (PARTITION BY post_year
                                   ORDER BY category_count DESC, category) = 1
        ORDER BY post_year""",
    "q3a_top_user_by_country": """
        WITH per_poster AS (
            SELECT country, poster_name, max(follower_count) AS followers
            FROM pin JOIN geo USING (ind)
            WHERE poster_name IS NOT NULL AND follower_count IS NOT NULL
              AND country IS NOT NULL
            GROUP BY country, poster_name)
        SELECT country, poster_name, followers AS follower_count FROM per_poster
        QUALIFY row_number() OVER (PARTITION BY country ORDER BY followers DESC, poster_name) = 1
        ORDER BY country""",
    "q3b_top_country_by_followers": """
        SELECT country, max(follower_count) AS follower_count
        FROM pin JOIN geo USING (ind)
        WHERE poster_name IS NOT NULL AND follower_count IS NOT NULL AND country IS NOT NULL
        GROUP BY country, poster_name
        ORDER BY 2 DESC, country LIMIT 1""",
    "q4_top_category_by_age_group": """
        SELECT age_group(age) AS age_group, category, count(*) AS category_count
        FROM pin JOIN usr USING (ind)
        WHERE category IS NOT NULL AND age_group(age) IS NOT NULL
        GROUP BY 1, category
        QUALIFY row_number() OVER (PARTITION BY age_group
                                   ORDER BY category_count DESC, category) = 1
        ORDER BY age_group""",
    "q5_median_followers_by_age_group": """
        SELECT age_group(age) AS age_group,
               quantile_cont(follower_count, 0.5)::DOUBLE AS median_follower_count
        FROM pin JOIN usr USING (ind)
        WHERE follower_count IS NOT NULL AND age_group(age) IS NOT NULL
        GROUP BY ALL ORDER BY age_group""",
    "q6_users_joined_by_year": """
        SELECT year(date_joined) AS post_year, count(*) AS number_users_joined
        FROM usr WHERE year(date_joined) BETWEEN 2015 AND 2020
        GROUP BY ALL ORDER BY post_year""",
    "q7_median_followers_by_join_year": """
        SELECT year(date_joined) AS post_year,
               quantile_cont(follower_count, 0.5)::DOUBLE AS median_follower_count
        FROM pin JOIN usr USING (ind)
        WHERE follower_count IS NOT NULL AND year(date_joined) BETWEEN 2015 AND 2020
        GROUP BY ALL ORDER BY post_year""",
    "q8_median_followers_by_age_group_and_join_year": """
        SELECT age_group(age) AS age_group, year(date_joined) AS post_year,
               quantile_cont(follower_count, 0.5)::DOUBLE AS median_follower_count
        FROM pin JOIN usr USING (ind)
        WHERE follower_count IS NOT NULL AND age_group(age) IS NOT NULL
          AND year(date_joined) BETWEEN 2015 AND 2020
        GROUP BY ALL ORDER BY age_group, post_year""",
}


@app.command("duckdb-child", hidden=True)
def duckdb_child(landing: Path, results: Path) -> None:
    import duckdb

    started = time.perf_counter()
    connection = duckdb.connect()
    connection.execute(DUCKDB_SQL.replace("@LANDING@", str(landing)).replace("@PREFIX@", PREFIX))
    output: dict[str, list[dict[str, Any]]] = {}
    for query_id, sql in DUCKDB_QUERIES.items():
        cursor = connection.execute(sql)
        names = [column[0] for column in cursor.description or []]
        output[query_id] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    job_seconds = time.perf_counter() - started
    results.write_text(json.dumps(output, indent=2), encoding="utf-8")
    print(json.dumps({"job_seconds": job_seconds}))


# -- measuring -------------------------------------------------------------------------------------


@dataclass
class Measured:
    job_seconds: float
    process_seconds: float
    peak_rss_bytes: int
    figures: dict[str, float]


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def measure(arguments: list[str]) -> Measured:
    """Run a child process, sampling the RSS of its whole process tree every 100 ms."""
    started = time.perf_counter()
    child = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        watched = psutil.Process(child.pid)
        while not stop.is_set():
            try:
                peak = max(peak, _tree_rss(watched))
            except psutil.Error:
                return
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = child.communicate()
    stop.set()
    sampler.join()
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"{arguments[2]} failed ({child.returncode}):\n{stderr[-3000:]}")
    reported = json.loads(stdout.strip().splitlines()[-1])
    return Measured(float(reported["job_seconds"]), elapsed, peak, reported)


def _same_results(left: dict[str, list[dict[str, Any]]], right: dict[str, Any]) -> list[str]:
    """Query ids whose rows differ (numbers compared with a relative tolerance)."""

    def close(a: Any, b: Any) -> bool:
        if isinstance(a, float) or isinstance(b, float):
            return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)
        return bool(a == b)

    differing = []
    for query_id, rows in left.items():
        other = right.get(query_id, [])
        same = len(rows) == len(other) and all(
            row.keys() == peer.keys() and all(close(row[k], peer[k]) for k in row)
            for row, peer in zip(rows, other, strict=True)
        )
        if not same:
            differing.append(query_id)
    return differing


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main(
    rows: Annotated[
        list[int] | None, typer.Option("--rows", help="source rows per topic (repeatable)")
    ] = None,
    workdir: Annotated[Path, typer.Option(help="where landed data and lakes go")] = (
        PROJECT_ROOT / ".run" / "bench" / "batch"
    ),
    driver_memory: Annotated[
        str, typer.Option(help="Spark driver memory (default: the pipeline's setting)")
    ] = "",
    increment: Annotated[
        float, typer.Option(help="after each size's run, land this share more and run again")
    ] = 0.01,
    json_out: Annotated[Path | None, typer.Option(help="also write the figures here")] = None,
) -> None:
    """Time the batch job (Spark + Delta) and DuckDB on the same landed JSON lines, plus the
    job's fixed cost on empty input and its cost for a small increment."""
    import shutil

    from pipeline.config import get_settings

    driver_memory = driver_memory or get_settings().spark_driver_memory
    sizes = rows if rows is not None else [100_000, 1_000_000]
    console = Console(width=140)
    table = Table(
        title=f"batch job: Spark + Delta (driver {driver_memory}) vs DuckDB, same JSON lines, "
        "same 9 queries"
    )
    for column in ("source rows/topic", "engine", "job s", "process s", "rows/s", "peak RSS MiB",
                   "same results", "load avg"):  # fmt: skip
        table.add_column(column, justify="right")
    script = [sys.executable, str(Path(__file__).resolve())]
    figures: dict[str, Any] = {"driver_memory": driver_memory, "sizes": {}}

    empty_landing, empty_lake = workdir / "landing-empty", workdir / "lake-empty"
    empty_landing.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(empty_lake, ignore_errors=True)
    empty = measure([*script, "spark-child", str(empty_landing), str(empty_lake),
                     str(workdir / "spark-empty.json"), "--driver-memory", driver_memory,
                     "--increment-rows", "0"])  # fmt: skip
    load = _load()
    figures["empty"] = {**empty.figures, "process_seconds": empty.process_seconds,
                        "peak_rss_bytes": empty.peak_rss_bytes, "load": load}  # fmt: skip
    table.add_row("0 (empty)", "spark+delta", f"{empty.job_seconds:.1f}",
                  f"{empty.process_seconds:.1f}", "", f"{empty.peak_rss_bytes / 2**20:,.0f}", "",
                  load)  # fmt: skip

    for size in sizes:
        landing = workdir / f"landing-{size}"
        started = time.perf_counter()
        generate_landing(landing, size)
        console.print(
            f"{size:,} rows/topic landed in {landing} ({time.perf_counter() - started:.0f} s)"
        )
        lake = workdir / f"lake-{size}"
        shutil.rmtree(lake, ignore_errors=True)
        spark_results, duck_results = (
            workdir / f"spark-{size}.json",
            workdir / f"duckdb-{size}.json",
        )
        increment_rows = max(1, round(size * increment)) if increment else 0
        runs = {
            "duckdb": measure([*script, "duckdb-child", str(landing), str(duck_results)]),
            "spark+delta": measure([*script, "spark-child", str(landing), str(lake),
                                    str(spark_results), "--driver-memory", driver_memory,
                                    "--increment-rows", str(increment_rows),
                                    "--total-rows", str(size)]),
        }  # fmt: skip
        load = _load()
        differing = _same_results(
            json.loads(spark_results.read_text(encoding="utf-8")),
            json.loads(duck_results.read_text(encoding="utf-8")),
        )
        verdict = "yes" if not differing else "no: " + ", ".join(differing)
        size_figures: dict[str, Any] = {
            engine: {**measured.figures, "process_seconds": measured.process_seconds,
                     "peak_rss_bytes": measured.peak_rss_bytes}
            for engine, measured in runs.items()
        }  # fmt: skip
        size_figures |= {"same_results": not differing, "increment_rows": increment_rows}
        figures["sizes"][str(size)] = size_figures | {"load": load}
        for engine, measured in runs.items():
            table.add_row(
                f"{size:,}",
                engine,
                f"{measured.job_seconds:.1f}",
                f"{measured.process_seconds:.1f}",
                f"{3 * size / measured.job_seconds:,.0f}",
                f"{measured.peak_rss_bytes / 2**20:,.0f}",
                verdict,
                load,
            )
        spark_figures = runs["spark+delta"].figures
        if "increment_seconds" in spark_figures:
            table.add_row(
                f"+{increment_rows:,} ({increment:.0%})",
                "spark+delta",
                f"{spark_figures['increment_seconds']:.1f}",
                f"unchanged: {spark_figures['unchanged_seconds']:.1f}",
                f"{spark_figures['increment_seconds'] / spark_figures['job_seconds']:.0%} of full",
                "",
                "",
                load,
            )
    console.print(table)
    console.print(
        "rows/s = 3 x source rows (pin, geo, user lines) / job seconds; process s includes "
        "interpreter and JVM start-up; peak RSS sums the process tree; the increment row is a "
        "run after that share more rows landed as new objects (unchanged: a run with nothing "
        "new); load avg is the 1/5/15-minute load after the size's runs."
    )
    if json_out is not None:
        json_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].endswith("-child"):
        app()
    else:
        typer.run(main)
