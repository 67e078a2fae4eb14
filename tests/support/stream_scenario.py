"""The stream layer's scenario, written once for the local stack's test
(tests/integration/test_stream.py) and the compose stack's (tests/compose/test_stream_path.py,
test_localstack.py): rows of known quirks posted through the API's Kinesis endpoints, what data
contract §3 makes of them, malformed records put straight into Kinesis, a poster that keeps
posting while the job is killed, and the checks on the Delta tables the streaming job writes.

A tier passes its stack handle: the host's `Settings` to post with, and a `TableReader` for the
tables its job writes (`stream_tables`, over the lake root that job writes to)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3
import requests
from pyspark.sql import DataFrame, SparkSession

from pipeline.config import Settings
from pipeline.config.settings import stream_names
from pipeline.lake import StreamPaths
from pipeline.stream.job import TABLES, stream_table_schema
from pipeline.transform.silver import ARRIVAL_ORDER, REASON_MALFORMED_JSON, REASON_MISSING_ID

Row = dict[str, Any]
# A stream table by name (pin, geo, user, or rejected), as the target's job wrote it.
TableReader = Callable[[str], DataFrame]

# 60 ids posted first (ten of them twice), then malformed records, then 40 new ids and ids
# already written (duplicates across micro-batches).
FIRST_IDS = list(range(5_000_000, 5_000_060))
LATER_IDS = list(range(5_000_060, 5_000_100))
ALL_IDS = FIRST_IDS + LATER_IDS
# posted while the job is killed and started again
KILL_IDS = list(range(6_000_000, 6_000_150))


# -- rows and what data contract §3 makes of them ------------------------------------------------


def source_rows(ind: int) -> dict[str, Row]:
    """The pin, geo and user rows of one id; `ind % 4` picks which quirks of data contract §1 it
    has."""
    kind = ind % 4
    pin: Row = {
        "index": ind,
        "unique_id": str(uuid.UUID(int=ind)),
        "title": f"Title {ind}",
        "description": "Watercolour ideas",
        "poster_name": f"Poster {ind}",
        "follower_count": "437",
        "tag_list": "art,paint",
        "is_image_or_video": "image",
        "image_src": f"https://example.org/{ind}.jpg",
        "downloaded": 1,
        "save_location": "Local save in /data/art",
        "category": "art",
    }
    geo: Row = {
        "ind": ind,
        "timestamp": "2020-08-28T03:52:47",
        "latitude": 10.5,
        "longitude": -20.25,
        "country": "Peru",
    }
    user: Row = {
        "ind": ind,
        "first_name": "Ann",
        "last_name": f"Lee{ind}",
        "age": 30,
        "date_joined": "2016-01-01 10:00:00",
    }
    if kind == 1:
        pin.update(
            follower_count="15k",
            title="No Title Data Available",
            description="No description available Story format",
            is_image_or_video="multi-video(story page format)",
        )
        geo.update(timestamp="2019-05-05T10:00:00+02:00", country="Cocos (Keeling) Islands")
        user.update(date_joined="2015-03-03T03:03:03Z")
    elif kind == 2:
        pin.update(
            follower_count="1.5M",
            poster_name="User Info Error",
            tag_list="N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",
            image_src="Image src error.",
        )
        geo.update(timestamp="2021-01-01 00:00:00.5")
    elif kind == 3:
        pin.update(
            follower_count="User Info Error",
            description="   ",
            save_location="Local save in /data/travel",
            category="travel",
        )
        geo.update(latitude=-90.0, longitude=180.0)
        user.update(first_name="", age=64)
    return {"pin": pin, "geo": geo, "user": user}


def expected_rows(ind: int) -> dict[str, Row]:
    """Data contract §3 applied by hand to `source_rows(ind)` (timestamps in UTC)."""
    kind = ind % 4
    pin: Row = {
        "ind": ind,
        "unique_id": str(uuid.UUID(int=ind)),
        "title": f"Title {ind}",
        "description": "Watercolour ideas",
        "follower_count": 437,
        "poster_name": f"Poster {ind}",
        "tag_list": "art,paint",
        "is_image_or_video": "image",
        "image_src": f"https://example.org/{ind}.jpg",
        "save_location": "/data/art",
        "category": "art",
    }
    geo: Row = {
        "ind": ind,
        "country": "Peru",
        "coordinates": [10.5, -20.25],
        "timestamp": datetime(2020, 8, 28, 3, 52, 47),
    }
    user: Row = {
        "ind": ind,
        "user_name": f"Ann Lee{ind}",
        "age": 30,
        "date_joined": datetime(2016, 1, 1, 10, 0, 0),
    }
    if kind == 1:
        pin.update(
            follower_count=15_000,
            title=None,
            description=None,
            is_image_or_video="multi-video(story page format)",
        )
        geo.update(timestamp=datetime(2019, 5, 5, 8, 0, 0), country="Cocos (Keeling) Islands")
        user.update(date_joined=datetime(2015, 3, 3, 3, 3, 3))
    elif kind == 2:
        pin.update(follower_count=1_500_000, poster_name=None, tag_list=None, image_src=None)
        geo.update(timestamp=datetime(2021, 1, 1, 0, 0, 0, 500_000))
    elif kind == 3:
        pin.update(
            follower_count=None, description=None, save_location="/data/travel", category="travel"
        )
        geo.update(coordinates=[-90.0, 180.0])
        user.update(user_name=f"Lee{ind}", age=64)
    return {"pin": pin, "geo": geo, "user": user}


# Put straight into Kinesis (another producer): each cannot be read as a row of its table.
MALFORMED: dict[str, tuple[bytes, str]] = {
    "pin": (b'{"index": 12, "title": "cut sho', REASON_MALFORMED_JSON),
    "geo": (b"not json at all", REASON_MALFORMED_JSON),
    "user": (b'{"first_name": "No", "last_name": "Id", "age": 40}', REASON_MISSING_ID),
}


# -- talking to the stack --------------------------------------------------------------------------


def post_rows(settings: Settings, ids: list[int], chunk: int = 25) -> None:
    """PUT /streams/{stream}/records on the API, per table, `chunk` records a request."""
    for table in TABLES:
        stream = settings.streams[table]
        for first in range(0, len(ids), chunk):
            records = [
                {"Data": source_rows(ind)[table], "PartitionKey": str(ind)}
                for ind in ids[first : first + chunk]
            ]
            answer = requests.put(
                f"{settings.api_url}/streams/{stream}/records",
                json={"StreamName": stream, "Records": records},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["FailedRecordCount"] == 0, answer.text


def put_malformed(settings: Settings) -> None:
    kinesis = boto3.client("kinesis", **settings.boto3_kwargs("kinesis"))
    for table, (data, _reason) in MALFORMED.items():
        kinesis.put_record(StreamName=settings.streams[table], Data=data, PartitionKey="bad")


def records_in_streams(settings: Settings) -> dict[str, int]:
    """How many records each stream holds (all shards, from the trim horizon)."""
    kinesis = boto3.client("kinesis", **settings.boto3_kwargs("kinesis"))
    counts = {}
    for table, stream in settings.streams.items():
        total = 0
        for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while True:
                answer = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                total += len(answer["Records"])
                if not answer["Records"]:
                    break
                iterator = answer["NextShardIterator"]
        counts[table] = total
    return counts


def rows_by_ind(frame: DataFrame, ids: list[int]) -> dict[int, list[Row]]:
    """The rows of each id, in data contract §3 columns (without the stream's arrival order)."""
    found: dict[int, list[Row]] = {}
    for row in frame.where(frame.ind.isin(ids)).drop(ARRIVAL_ORDER).collect():
        found.setdefault(row["ind"], []).append(row.asDict())
    return found


def assert_no_duplicate_ids(frame: DataFrame) -> None:
    duplicated = frame.groupBy("ind").count().where("count > 1").collect()
    assert duplicated == [], f"ids written more than once: {duplicated[:10]}"


def stream_tables(spark: SparkSession, lake_root: str, prefix: str) -> TableReader:
    """The tables the stream job with topic prefix `prefix` writes under `lake_root`."""
    paths = StreamPaths(lake_root, prefix)

    def read(name: str) -> DataFrame:
        path = paths.rejected if name == "rejected" else paths.table(name)
        return spark.read.format("delta").load(path)

    return read


def all_arrived(read: TableReader, ids: list[int]) -> Callable[[], bool]:
    """A condition: every table holds a row of each of `ids`."""

    def arrived() -> bool:
        return all(len(rows_by_ind(read(name), ids)) == len(ids) for name in TABLES)

    return arrived


# -- the checks ------------------------------------------------------------------------------------


def assert_each_table_holds_the_ids_once(read: TableReader, ids: list[int]) -> None:
    for name in TABLES:
        frame = read(name)
        found = rows_by_ind(frame, ids)
        assert sorted(found) == ids, f"{name}: missing {sorted(set(ids) - set(found))}"
        assert all(len(rows) == 1 for rows in found.values()), name
        assert_no_duplicate_ids(frame)


def assert_rows_cleaned(read: TableReader, ids: list[int]) -> None:
    """Each id's row is what data contract §3 makes of what was posted."""
    for name in TABLES:
        for ind, rows in rows_by_ind(read(name), ids).items():
            assert rows[0] == expected_rows(ind)[name], f"{name} {ind}"


def assert_columns_are_the_contracts(read: TableReader) -> None:
    """Data contract §3 columns, then each row's arrival order (its Kinesis sequence number)."""
    for name in TABLES:
        assert read(name).columns == stream_table_schema(name).fieldNames()


def assert_malformed_records_rejected(read: TableReader, prefix: str) -> None:
    """Each malformed record once in the rejected table, with its reason and its stream."""
    rejected = read("rejected").collect()
    streams = stream_names(prefix)
    for name, (data, reason) in MALFORMED.items():
        ours = [row for row in rejected if row["source"] == name and row["record"] == data.decode()]
        assert len(ours) == 1, f"{name}: {ours}"
        assert ours[0]["reason"] == reason
        assert ours[0]["_stream"] == streams[name]
        assert ours[0]["_sequence_number"]


class KeepPosting:
    """Posts `ids` ten at a time (each chunk with two of them again), 0.4 s apart, in a thread:
    records keep arriving while the job is killed. `posted`: the ids posted so far."""

    def __init__(self, settings: Settings, ids: list[int]) -> None:
        self.settings = settings
        self.ids = ids
        self.posted: list[int] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._post)

    def _post(self) -> None:
        try:
            for first in range(0, len(self.ids), 10):
                chunk = self.ids[first : first + 10]
                post_rows(self.settings, chunk + chunk[:2])  # with duplicates
                self.posted.extend(chunk)
                time.sleep(0.4)
        except BaseException as error:  # reported by the test thread
            self.errors.append(error)

    def start(self) -> KeepPosting:
        self.thread.start()
        return self

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout_s: float) -> None:
        self.thread.join(timeout_s)

    def assert_all_posted(self) -> None:
        assert not self.errors, self.errors
        assert len(self.posted) == len(self.ids)
