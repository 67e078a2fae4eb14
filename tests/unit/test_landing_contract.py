"""The landing contract (`pipeline.landing`) and the S3 sink's configuration agree.

The sink is Java and cannot import the contract: its folder is rendered into its config from
`connectors/s3-sink.json` (checked here); the object names it writes are checked against
`window_object_key` by tests/integration/test_landing.py on a real worker."""

from __future__ import annotations

from pipeline.config import get_settings
from pipeline.land.connector import render
from pipeline.landing import (
    LANDING_PREFIX,
    object_key,
    parse_object_key,
    partition_prefix,
    topic_prefix,
    window_object_key,
    window_start,
)


def test_the_connector_lands_under_the_contracts_prefix() -> None:
    config = render(get_settings())["config"]
    assert config["s3.prefix"] == LANDING_PREFIX
    assert config["flush.max.records"] == str(get_settings().landing_flush_max_records)


def test_object_keys_name_topic_partition_and_zero_padded_start() -> None:
    assert topic_prefix("p.pin") == "topics/p.pin/"
    assert partition_prefix("p.pin", 3) == "topics/p.pin/partition=3/"
    assert object_key("p.pin", 3, 1500) == (
        "topics/p.pin/partition=3/p.pin+3+00000000000000001500.json"
    )


def test_an_offset_lands_in_its_aligned_window() -> None:
    assert [window_start(offset, 500) for offset in (0, 499, 500, 1234)] == [0, 0, 500, 1000]
    assert window_object_key("p.geo", 0, 1234, 500) == object_key("p.geo", 0, 1000)


def test_keys_parse_back_and_anything_else_is_no_landed_object() -> None:
    key = object_key("p.user", 2, 40)
    assert parse_object_key(key) == ("p.user", 2, 40)
    # a name in another topic's or partition's folder, a short start, a foreign file
    assert parse_object_key(f"{partition_prefix('p.pin', 2)}p.user+2+{40:020d}.json") is None
    assert parse_object_key(f"{partition_prefix('p.user', 1)}p.user+2+{40:020d}.json") is None
    assert parse_object_key(f"{partition_prefix('p.user', 2)}p.user+2+40.json") is None
    assert parse_object_key(f"{partition_prefix('p.user', 2)}_SUCCESS") is None
