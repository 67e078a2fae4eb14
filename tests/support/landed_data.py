"""A small landed data set in the S3 sink's layout
(`topics/<topic>/partition=<p>/<topic>+<p>+<offset>.json`), small enough that every expected
result (silver, rejected, the nine gold tables) was worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.config.settings import topic_names
from pipeline.landing import object_key
from pipeline.transform.job import TABLES
from pipeline.transform.silver import (
    REASON_MALFORMED_JSON,
    REASON_MISSING_ID,
    REASON_SCHEMA_MISMATCH,
)

PREFIX = "itest"


# Per id: (category, poster, follower_count), (country, post time), (first, last, age, joined).
PEOPLE: dict[int, tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]] = {
    1: (("art", "Ann", "15k"), ("France", "2018-03-01T10:00:00"),
        ("Ann", "Lee", 22, "2015-05-01 10:00:00")),
    2: (("art", "Bob", "2M"), ("France", "2019-07-07 12:00:00.5"),
        ("Bob", "Ray", 30, "2016-01-01T00:00:00Z")),
    3: (("travel", "Cat", "437"), ("Peru", "2020-08-28T03:52:47+02:00"),
        ("Cat", "Poe", 45, "2017-02-02T02:02:02")),
    4: (("travel", "User Info Error", "User Info Error"), ("Peru", "2020-01-01T00:00:00"),
        ("Dan", "Fox", 17, "2015-06-06T06:06:06")),
    # 2022-12-31T23:30-01:00 is 2023 in UTC: outside q2's years.
    5: (("quotes", "Eve", "1.5k"), ("Peru", "2022-12-31T23:30:00-01:00"),
        ("Eve", "Kim", 60, "2016-03-03T03:03:03")),
    6: (("", "Fay", "900"), ("Chad", "2017-05-05T05:05:05"),
        ("Fay", "Orr", 35, "2014-04-04T04:04:04")),
    7: (("finance", "Gus", "3k"), ("Chad", "2021-01-01T00:00:00"),
        ("Gus", "Yu", 28, "2018-08-08T08:08:08")),
    # Outside every year range and age group: moves no result asserted after it lands.
    8: (("art", "Hal", "10"), ("France", "2023-03-03T03:03:03"),
        ("Hal", "Ng", 16, "2014-01-01T00:00:00")),
}  # fmt: skip


BROKEN_LINES = {
    "pin": '{"index": 9, "title": "broken',
    "geo": '{"country": "Peru", "timestamp": "2020-01-01T00:00:00"}',
    "user": '{"ind": "x", "first_name": "Q"}',
}


EXPECTED_REASONS = {
    "pin": REASON_MALFORMED_JSON,
    "geo": REASON_MISSING_ID,
    "user": REASON_SCHEMA_MISMATCH,
}


EXPECTED_RESULTS: dict[str, list[dict[str, Any]]] = {
    "q1_top_category_by_country": [
        {"country": "France", "category": "art", "category_count": 2},
        {"country": "Peru", "category": "travel", "category_count": 2},
    ],
    "q2_top_category_by_year": [
        {"post_year": 2018, "category": "art", "category_count": 1},
        {"post_year": 2019, "category": "art", "category_count": 1},
        {"post_year": 2020, "category": "travel", "category_count": 2},
    ],
    "q3a_top_user_by_country": [
        {"country": "Chad", "poster_name": "Fay", "follower_count": 900},
        {"country": "France", "poster_name": "Bob", "follower_count": 2_000_000},
        {"country": "Peru", "poster_name": "Eve", "follower_count": 1_500},
    ],
    "q3b_top_country_by_followers": [{"country": "France", "follower_count": 2_000_000}],
    "q4_top_category_by_age_group": [
        {"age_group": "+50", "category": "quotes", "category_count": 1},
        {"age_group": "18-24", "category": "art", "category_count": 1},
        {"age_group": "25-35", "category": "art", "category_count": 1},
        {"age_group": "36-50", "category": "travel", "category_count": 1},
    ],
    "q5_median_followers_by_age_group": [
        {"age_group": "+50", "median_follower_count": 1_500.0},
        {"age_group": "18-24", "median_follower_count": 15_000.0},
        {"age_group": "25-35", "median_follower_count": 1_000_450.0},
        {"age_group": "36-50", "median_follower_count": 437.0},
    ],
    "q6_users_joined_by_year": [
        {"post_year": 2015, "number_users_joined": 2},
        {"post_year": 2016, "number_users_joined": 2},
        {"post_year": 2017, "number_users_joined": 1},
    ],
    "q7_median_followers_by_join_year": [
        {"post_year": 2015, "median_follower_count": 15_000.0},
        {"post_year": 2016, "median_follower_count": 1_000_750.0},
        {"post_year": 2017, "median_follower_count": 437.0},
    ],
    "q8_median_followers_by_age_group_and_join_year": [
        {"age_group": "+50", "post_year": 2016, "median_follower_count": 1_500.0},
        {"age_group": "18-24", "post_year": 2015, "median_follower_count": 15_000.0},
        {"age_group": "25-35", "post_year": 2016, "median_follower_count": 2_000_000.0},
        {"age_group": "36-50", "post_year": 2017, "median_follower_count": 437.0},
    ],
}


def record(table: str, ind: int) -> dict[str, Any]:
    (category, poster, followers), (country, posted), (first, last, age, joined) = PEOPLE[ind]
    if table == "pin":
        return {
            "index": ind,
            "unique_id": f"00000000-0000-4000-8000-{ind:012d}",
            "title": f"Pin number {ind}",
            "description": "No description available" if ind == 3 else "A pin.",
            "poster_name": poster,
            "follower_count": followers,
            "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e" if ind == 4 else "one,two",
            "is_image_or_video": "image",
            "image_src": "Image src error." if ind == 4 else f"https://i.example/{ind}.jpg",
            "downloaded": 1,
            "save_location": f"Local save in /data/{category or 'art'}",
            "category": category,
        }
    if table == "geo":
        return {
            "ind": ind,
            "timestamp": posted,
            "latitude": -12.5 + ind,
            "longitude": 77.25,
            "country": country,
        }
    return {"ind": ind, "first_name": first, "last_name": last, "age": age, "date_joined": joined}


def landed_objects(
    prefix: str, inds_by_object: dict[tuple[int, int], list[int]], broken: bool
) -> dict[str, str]:
    """Object key → JSON lines, for each table, in the S3 sink's layout."""
    objects: dict[str, str] = {}
    for table in TABLES:
        topic = topic_names(prefix)[table]
        for (partition, offset), inds in inds_by_object.items():
            lines = [json.dumps(record(table, ind)) for ind in inds]
            if broken and (partition, offset) == (0, 0):
                lines.append(BROKEN_LINES[table])
            key = object_key(topic, partition, offset)
            objects[key] = "\n".join(lines) + "\n"
    return objects


# Ids 1 and 3 arrive twice (the emulator samples with replacement), in another partition.
FIRST_LANDING = {(0, 0): [1, 2, 3, 4], (1, 0): [5, 6, 1, 3]}


# Later: a new object with a new id and a duplicate of one already cleaned, and the open window
# of partition 1 rewritten under the same name once it has grown by id 8 (as the S3 sink does).
SECOND_LANDING = {(0, 5): [7, 2], (1, 0): [5, 6, 1, 3, 8]}


def write_folder(root: Path, objects: dict[str, str]) -> None:
    for key, text in objects.items():
        target = root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
