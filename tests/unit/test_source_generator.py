"""Synthetic source tables match data contract §1: columns, types, ranges, dirty values, linkage."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect

from pipeline.source import database
from pipeline.source import vocabulary as v
from pipeline.source.generator import DirtyRates, format_follower_count, generate, generate_row
from pipeline.source.loader import export_tables, seed_database

ROWS = 20_000
SEED = 11

CONTRACT_COLUMNS = {
    "pinterest_data": [
        "index", "unique_id", "title", "description", "poster_name", "follower_count",
        "tag_list", "is_image_or_video", "image_src", "downloaded", "save_location", "category",
    ],
    "geolocation_data": ["ind", "timestamp", "latitude", "longitude", "country"],
    "user_data": ["ind", "first_name", "last_name", "age", "date_joined"],
}  # fmt: skip
CONTRACT_CATEGORIES = {
    "art", "beauty", "christmas", "diy-and-crafts", "education", "event-planning", "finance",
    "home-decor", "mens-fashion", "quotes", "tattoos", "travel", "vehicles",
}  # fmt: skip
PLACEHOLDERS = {
    v.NO_TITLE, v.NO_DESCRIPTION, v.NO_DESCRIPTION_STORY, v.USER_INFO_ERROR, v.NO_TAGS,
    v.IMAGE_SRC_ERROR,
}  # fmt: skip


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("generated") / "source.db"
    engine = database.connect(f"sqlite:///{path}")
    seed_database(engine, ROWS, seed=SEED, workers=0)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def tables(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    return {name: list(database.iter_table(engine, name)) for name in database.TABLES}


def share(rows: list[dict[str, Any]], column: str, value: Any) -> float:
    return sum(1 for row in rows if row[column] == value) / len(rows)


def assert_rate(observed: float, expected: float, n: int) -> None:
    """Within 4.5 binomial standard deviations (the data is fixed by the seed: no flakiness)."""
    sd = math.sqrt(expected * (1 - expected) / n)
    assert abs(observed - expected) <= 4.5 * sd + 1e-9, (observed, expected)


# -- shape -------------------------------------------------------------------------------------


def test_tables_and_columns_in_spec_order(engine: Engine) -> None:
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) >= set(CONTRACT_COLUMNS)
    for table, columns in CONTRACT_COLUMNS.items():
        assert [column["name"] for column in inspector.get_columns(table)] == columns
    geo_types = {c["name"]: str(c["type"]) for c in inspector.get_columns("geolocation_data")}
    user_types = {c["name"]: str(c["type"]) for c in inspector.get_columns("user_data")}
    assert geo_types["timestamp"] == user_types["date_joined"] == "DATETIME"


def test_value_types(tables: dict[str, list[dict[str, Any]]]) -> None:
    pin_types: dict[str, type] = {column: str for column in CONTRACT_COLUMNS["pinterest_data"]}
    pin_types |= {"index": int, "downloaded": int}
    expected = {
        "pin": pin_types,
        "geo": {"ind": int, "timestamp": datetime, "latitude": float, "longitude": float,
                "country": str},
        "user": {"ind": int, "first_name": str, "last_name": str, "age": int,
                 "date_joined": datetime},
    }  # fmt: skip
    for name, rows in tables.items():
        for row in rows[:2_000]:
            assert {column: type(value) for column, value in row.items()} == expected[name]


def test_ids_link_the_three_tables(tables: dict[str, list[dict[str, Any]]]) -> None:
    assert [row["index"] for row in tables["pin"]] == list(range(ROWS))
    assert [row["ind"] for row in tables["geo"]] == list(range(ROWS))
    assert [row["ind"] for row in tables["user"]] == list(range(ROWS))


def test_pin_values_and_ranges(tables: dict[str, list[dict[str, Any]]]) -> None:
    pins = tables["pin"]
    assert {row["category"] for row in pins} == CONTRACT_CATEGORIES
    assert Counter(row["is_image_or_video"] for row in pins).keys() == {
        "image", "video", "multi-video(story page format)"
    }  # fmt: skip
    for row in pins:
        assert row["save_location"] == f"Local save in /data/{row['category']}"
        assert row["downloaded"] in (0, 1)
        assert uuid.UUID(row["unique_id"]).version == 4
        assert row["image_src"] == v.IMAGE_SRC_ERROR or row["image_src"].startswith(
            "https://i.pinimg.com/"
        )
        assert row["title"] and row["description"] and row["tag_list"] and row["poster_name"]
    assert len({row["unique_id"] for row in pins}) == ROWS
    # Every category has realistic content and a sizeable share.
    counts = Counter(row["category"] for row in pins)
    assert min(counts.values()) > ROWS / 13 / 2


def test_follower_counts_use_k_and_m_suffixes(tables: dict[str, list[dict[str, Any]]]) -> None:
    counts = [row["follower_count"] for row in tables["pin"]]
    pattern = re.compile(r"^(0|[1-9]\d{0,2})$|^[1-9]\d{0,2}k$|^[1-9]\d*M$")
    assert all(value == v.USER_INFO_ERROR or pattern.match(value) for value in counts)
    kinds = Counter(
        "error" if c == v.USER_INFO_ERROR else c[-1] if c[-1] in "kM" else "digits" for c in counts
    )
    assert kinds["digits"] > 0.05 * ROWS
    assert kinds["k"] > 0.3 * ROWS
    assert kinds["M"] > 0.002 * ROWS
    assert [format_follower_count(n) for n in (0, 437, 999, 1_000, 15_900, 2_000_000)] == [
        "0", "437", "999", "1k", "15k", "2M"
    ]  # fmt: skip


def test_posters_repeat_with_a_stable_follower_count(
    tables: dict[str, list[dict[str, Any]]],
) -> None:
    # Posters are drawn from a pool per category; a poster keeps its follower count.
    followers: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in tables["pin"]:
        if row["poster_name"] != v.USER_INFO_ERROR:
            followers[row["category"], row["poster_name"]].add(row["follower_count"])
    posts = Counter(row["poster_name"] for row in tables["pin"])
    assert max(posts.values()) >= 5  # popular posters post often
    assert sum(1 for name, count in posts.items() if count > 1) > 1_000
    # Display names can collide (two "Miller Designs"), so allow a few names with two counts.
    stable = sum(1 for counts in followers.values() if len(counts) == 1)
    assert stable / len(followers) > 0.97


def test_geo_and_user_values_and_ranges(tables: dict[str, list[dict[str, Any]]]) -> None:
    geo, users = tables["geo"], tables["user"]
    assert all(-90 <= row["latitude"] <= 90 and -180 <= row["longitude"] <= 180 for row in geo)
    assert min(row["latitude"] for row in geo) < -85 and max(row["longitude"] for row in geo) > 175
    assert {row["timestamp"].year for row in geo} == set(range(2017, 2023))
    countries = {row["country"] for row in geo}
    assert countries <= set(v.COUNTRIES)
    assert {"Antarctica (the territory South of 60 deg S)", "Cocos (Keeling) Islands"} <= countries
    assert len(countries) > 200
    assert {row["date_joined"].year for row in users} == {2015, 2016, 2017}
    ages = [row["age"] for row in users]
    assert min(ages) == 18 and 65 <= max(ages) <= 70
    assert 25 <= sorted(ages)[len(ages) // 2] <= 40
    assert all(row["first_name"] in v.FIRST_NAMES and row["last_name"] in v.LAST_NAMES
               for row in users)  # fmt: skip
    assert len({row["first_name"] for row in users}) > 300
    # A user posts after joining.
    for geo_row, user_row in zip(geo, users, strict=True):
        assert geo_row["timestamp"] >= user_row["date_joined"]


# -- dirty values --------------------------------------------------------------------------------


def expected_shares(r: DirtyRates) -> dict[tuple[str, str], float]:
    s = r.story_page
    return {
        ("title", v.NO_TITLE): s * r.story_no_title + (1 - s) * r.no_title,
        ("description", v.NO_DESCRIPTION_STORY): s,
        ("description", v.NO_DESCRIPTION): (1 - s) * r.no_description,
        ("poster_name", v.USER_INFO_ERROR): s * r.story_user_info_error
        + (1 - s) * r.user_info_error,
        ("follower_count", v.USER_INFO_ERROR): s * r.story_user_info_error
        + (1 - s) * r.user_info_error,
        ("tag_list", v.NO_TAGS): s * r.story_no_tags + (1 - s) * r.no_tags,
        ("image_src", v.IMAGE_SRC_ERROR): s + (1 - s) * r.image_src_error,
        ("is_image_or_video", v.STORY_PAGE): s,
        ("is_image_or_video", v.VIDEO): (1 - s) * r.video,
    }


def test_every_placeholder_at_its_default_rate(tables: dict[str, list[dict[str, Any]]]) -> None:
    pins = tables["pin"]
    for (column, placeholder), expected in expected_shares(DirtyRates()).items():
        assert_rate(share(pins, column, placeholder), expected, len(pins))
    # "A few percent of rows", as in the original.
    dirty = sum(1 for row in pins if any(value in PLACEHOLDERS for value in row.values()))
    assert 0.05 < dirty / len(pins) < 0.2


def test_every_placeholder_at_a_configured_rate() -> None:
    rates = DirtyRates(
        story_page=0.2, story_no_title=0.9, story_no_tags=0.1, story_user_info_error=0.6,
        no_title=0.05, no_description=0.1, no_tags=0.07, user_info_error=0.08,
        image_src_error=0.03, video=0.4,
    )  # fmt: skip
    columns = database.COLUMNS["pin"]
    pins = [
        dict(zip(columns, row, strict=True))
        for batch in generate(6_000, seed=3, rates=rates)
        for row in batch.pin
    ]
    for (column, placeholder), expected in expected_shares(rates).items():
        assert_rate(share(pins, column, placeholder), expected, len(pins))
    clean = DirtyRates(**{name: 0.0 for name in DirtyRates().__dict__})
    rows = [row for batch in generate(2_000, seed=3, rates=clean) for row in batch.pin]
    assert not any(value in PLACEHOLDERS for row in rows for value in row)


def test_story_pages_carry_several_placeholders(tables: dict[str, list[dict[str, Any]]]) -> None:
    def placeholders(row: dict[str, Any]) -> int:
        return sum(1 for value in row.values() if value in PLACEHOLDERS)

    stories = [row for row in tables["pin"] if row["is_image_or_video"] == v.STORY_PAGE]
    others = [row for row in tables["pin"] if row["is_image_or_video"] != v.STORY_PAGE]
    assert all(row["description"] == v.NO_DESCRIPTION_STORY for row in stories)
    assert all(row["image_src"] == v.IMAGE_SRC_ERROR and row["downloaded"] == 0 for row in stories)
    assert all(row["description"] != v.NO_DESCRIPTION_STORY for row in others)
    assert sum(map(placeholders, stories)) / len(stories) > 3.5
    assert sum(map(placeholders, others)) / len(others) < 0.2
    # The user-info placeholder always hits both columns together (a failed profile scrape).
    for row in tables["pin"]:
        assert (row["poster_name"] == v.USER_INFO_ERROR) == (
            row["follower_count"] == v.USER_INFO_ERROR
        )


def test_rates_are_validated() -> None:
    with pytest.raises(ValueError, match="story_page"):
        DirtyRates(story_page=1.5)


# -- determinism -------------------------------------------------------------------------------


def dump(tmp_path: Path, name: str, rows: int, seed: int, **options: Any) -> dict[str, bytes]:
    engine = database.connect(f"sqlite:///{tmp_path / name}.db")
    seed_database(engine, rows, seed=seed, **options)
    files = export_tables(engine, tmp_path / name, "csv")
    engine.dispose()
    return {table: path.read_bytes() for table, path in files.items()}


def test_same_seed_gives_byte_identical_data_whatever_the_batching(tmp_path: Path) -> None:
    first = dump(tmp_path, "a", 3_000, seed=5, batch_size=1_000, workers=0)
    second = dump(tmp_path, "b", 3_000, seed=5, batch_size=337, workers=1)
    other = dump(tmp_path, "c", 3_000, seed=6, batch_size=1_000, workers=0)
    assert first == second
    assert all(first[table] != other[table] for table in first)
    # A shorter run is a prefix of a longer one: row data depends on (seed, id) only.
    prefix = dump(tmp_path, "d", 1_000, seed=5, batch_size=128, workers=0)
    for table, data in prefix.items():
        assert first[table].startswith(data)
    assert generate_row(5, 2_999, DirtyRates()) == generate_row(5, 2_999, DirtyRates())


# -- memory --------------------------------------------------------------------------------------

# Own peak from VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec(), so it would report the
# forking pytest process's size (hundreds of MB after the e2e tests), not this program's.
MEASURE = """
import json, re, resource, sys
from pathlib import Path
from pipeline.source import database
from pipeline.source.loader import seed_database
engine = database.connect(sys.argv[1])
counts = seed_database(engine, int(sys.argv[2]), seed=1)
status = Path("/proc/self/status").read_text()
print(json.dumps({
    "counts": counts,
    "own_mb": int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024,
    "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def test_a_million_row_generation_stays_within_a_fixed_memory_bound(tmp_path: Path) -> None:
    """1M ids = 3M table rows (about 600 MB of SQLite) in well under 300 MB of RSS per process.

    Held in memory, the same rows would take several GB; the bound holds because generation
    and inserts stream in batches. Timing is measured by bench/bench_seed.py, not here.
    """
    url = f"sqlite:///{tmp_path / 'million.db'}"
    output = subprocess.run(
        [sys.executable, "-c", MEASURE, url, "1000000"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    figures = json.loads(output.splitlines()[-1])
    assert figures["counts"] == {"pin": 1_000_000, "geo": 1_000_000, "user": 1_000_000}
    assert figures["own_mb"] < 300
    assert figures["worker_mb"] < 300
