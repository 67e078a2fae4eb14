"""The HTML report without a JVM: a lake written with delta-rs, read back, charted and rendered.

The gold rows are the batch job's expected results (tests/integration/test_batch_job.py), so the
report is checked against the same data as the job.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import AwsSettings, get_settings
from pipeline.lake import QUERY_COLUMNS, LakePaths, StreamPaths
from pipeline.report import charts
from pipeline.report.collect import ReportData, collect
from pipeline.report.lake import delta_rs_uri, s3_location, storage_options
from pipeline.report.render import cell, render
from tests.support.landed_data import EXPECTED_RESULTS

PREFIX = "unit"
RUN_1 = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
RUN_2 = RUN_1 + timedelta(days=1)


def write(path: str, rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> None:
    write_deltalake(path, pa.Table.from_pylist(rows, schema=schema), mode="append")


def quality_rows(run_id: str, run_at: datetime, dup_passes: bool) -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "run_at": run_at, "table": "silver.pin", "check": "rows present",
         "threshold": "> 0 rows", "measured": "6 rows", "passed": True},
        {"run_id": run_id, "run_at": run_at, "table": "silver.pin", "check": "no duplicate ind",
         "threshold": "0 duplicated", "measured": "0 duplicated" if dup_passes else "1 duplicated",
         "passed": dup_passes},
    ]  # fmt: skip


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """Gold (rows shuffled), silver, rejected, one stream table and two quality runs."""
    root = tmp_path / "lake"
    paths, stream = LakePaths(str(root)), StreamPaths(str(root), PREFIX)
    shuffle = random.Random(7)
    for query_id, rows in EXPECTED_RESULTS.items():
        write(paths.gold(query_id), shuffle.sample(rows, len(rows)))
    for table, count in (("pin", 6), ("geo", 7), ("user", 5)):
        write(paths.silver(table), [{"ind": ind} for ind in range(count)])
    write(
        paths.rejected,
        [
            {"source": "pin", "reason": "malformed JSON", "record": "{"},
            {"source": "pin", "reason": "malformed JSON", "record": "{x"},
            {"source": "geo", "reason": "missing ind", "record": "{}"},
        ],
    )
    write(stream.table("pin"), [{"ind": 1}, {"ind": 2}])
    write(LakePaths(str(root)).quality_checks, quality_rows("second", RUN_2, dup_passes=False))
    write(LakePaths(str(root)).quality_checks, quality_rows("first", RUN_1, dup_passes=True))
    landing = tmp_path / "landing" / "topics" / f"{PREFIX}.pin" / "partition=0"
    landing.mkdir(parents=True)
    (landing / "a.json").write_text("{}\n{}\n")
    (landing / "b.json").write_text("{}\n")
    return root


def collected(lake: Path, **kwargs: Any) -> ReportData:
    return collect(
        get_settings(),
        str(lake),
        landing=str(lake.parent / "landing"),
        prefix=PREFIX,
        run_date=date(2026, 11, 29),
        **kwargs,
    )


def test_collect_reads_every_input_from_delta_without_spark(lake: Path) -> None:
    ledger = lake.parent / "ledger.jsonl"
    ledger.write_text(
        "".join(
            json.dumps({"table": t, "id": i}) + "\n" for t in ("pin", "pin", "geo") for i in (1,)
        )
    )
    data = collected(lake, ledger=ledger, stage_seconds={"batch job": 75.0})
    assert data.gold == EXPECTED_RESULTS  # sorted by the leading columns again
    # the latest run's checks, and both runs oldest first
    assert [(row["check"], row["passed"]) for row in data.quality] == [
        ("rows present", True),
        ("no duplicate ind", False),
    ]
    assert [(run.run_id, run.passed, run.failed) for run in data.quality_runs] == [
        ("first", 2, 0),
        ("second", 1, 1),
    ]
    assert data.quality_runs[1].failed_checks == ["silver.pin: no duplicate ind"]
    counts = data.counts
    assert counts.records_posted == {"pin": 2, "geo": 1}
    assert counts.silver == {"pin": 6, "geo": 7, "user": 5}
    assert counts.bronze == {"pin": None, "geo": None, "user": None}
    assert counts.rejected == {("geo", "missing ind"): 1, ("pin", "malformed JSON"): 2}
    assert counts.stream == {"pin": 2, "geo": None, "user": None}
    assert counts.stream_rejected is None
    pin = counts.landed["pin"]
    assert pin is not None and (pin.objects, pin.bytes) == (2, 9)
    assert counts.stage_seconds == {"batch job": 75.0}


def test_a_missing_gold_table_reads_as_none_and_renders_as_missing(lake: Path) -> None:
    empty = lake.parent / "empty-lake"
    data = collect(get_settings(), str(empty), landing=str(empty), prefix=PREFIX)
    assert data.gold == dict.fromkeys(QUERY_COLUMNS)
    assert data.quality == [] and data.quality_runs == []
    html = render(data)
    assert html.count("no Delta table") == len(QUERY_COLUMNS)
    assert "The quality job has not recorded a run" in html


def layer_marks(spec: dict[str, Any]) -> list[str]:
    layers = spec.get("layer", [spec])
    return [layer["mark"]["type"] for layer in layers]


def chart_values(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows a chart draws (Altair moves inline data to top-level `datasets`)."""
    data = spec.get("data") or spec["layer"][0]["data"]
    values: list[dict[str, Any]] = (
        spec["datasets"][data["name"]] if "name" in data else data["values"]
    )
    return values


def first_encoding(spec: dict[str, Any]) -> dict[str, Any]:
    layers = spec.get("layer", [spec])
    return {**spec.get("encoding", {}), **layers[0].get("encoding", {})}


@pytest.mark.parametrize(
    ("query_id", "mark", "x", "y"),
    [
        ("q1_top_category_by_country", "bar", "category_count", "country"),
        ("q2_top_category_by_year", "line", "post_year", "category_count"),
        ("q3a_top_user_by_country", "bar", "follower_count", "country"),
        ("q3b_top_country_by_followers", "bar", "follower_count", "country"),
        ("q4_top_category_by_age_group", "bar", "age_group", "category_count"),
        ("q5_median_followers_by_age_group", "bar", "age_group", "median_follower_count"),
        ("q6_users_joined_by_year", "line", "post_year", "number_users_joined"),
        ("q7_median_followers_by_join_year", "line", "post_year", "median_follower_count"),
        ("q8_median_followers_by_age_group_and_join_year", "rect", "post_year", "age_group"),
    ],
)
def test_each_query_gets_the_chart_for_its_shape(query_id: str, mark: str, x: str, y: str) -> None:
    spec = charts.spec(charts.gold_chart(query_id, EXPECTED_RESULTS[query_id]))
    assert layer_marks(spec)[0] == mark
    encoding = first_encoding(spec)
    assert (encoding["x"]["field"], encoding["y"]["field"]) == (x, y)
    if "age_group" in (x, y):  # in age order, not alphabetical (+50 last)
        axis = "x" if x == "age_group" else "y"
        assert encoding[axis]["sort"] == charts.AGE_GROUPS
    drawn = sorted(json.dumps(row, sort_keys=True) for row in chart_values(spec))
    assert drawn == sorted(json.dumps(row, sort_keys=True) for row in EXPECTED_RESULTS[query_id])


def test_ranked_bars_show_the_leaders_largest_first() -> None:
    rows = [{"country": f"C{i:02d}", "category": "art", "category_count": i} for i in range(40)]
    spec = charts.spec(charts.gold_chart("q1_top_category_by_country", rows))
    encoding = first_encoding(spec)
    leaders = [f"C{i:02d}" for i in range(39, 39 - charts.TOP_N, -1)]
    assert encoding["y"]["sort"] == leaders
    assert [row["country"] for row in chart_values(spec)] == leaders
    assert spec["title"]["text"] == f"top {charts.TOP_N} of 40 countries"


class Page(HTMLParser):
    """What the browser would fetch or run: external references, scripts, chart containers."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.scripts: list[str] = []
        self.charts: list[str] = []
        self.query_sections: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.references += [v for k, v in attrs if k in ("src", "href") and v and "//" in v]
        if tag in ("link", "iframe", "img"):
            self.references.append(tag)
        if "chart" in (values.get("class") or "").split():
            self.charts.append(values.get("id") or "")
        if tag == "section" and "query" in (values.get("class") or ""):
            self.query_sections.append(values.get("data-query-id") or "")
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def test_the_report_is_one_self_contained_file_with_a_chart_and_table_per_query(
    lake: Path,
) -> None:
    data = collected(lake)
    # a hostile name must stay text: in the table and inside the inline script
    data.gold["q1_top_category_by_country"] = [
        {"country": "Peru</script><b>", "category": "art & <craft>", "category_count": 3}
    ]
    html = render(data)
    page = Page()
    page.feed(html)
    assert page.references == []  # nothing to fetch: opens offline
    assert page.query_sections == list(QUERY_COLUMNS)
    assert [f"chart-{q}" for q in QUERY_COLUMNS] == page.charts[: len(QUERY_COLUMNS)]
    assert {"chart-quality-history", "chart-layers"} <= set(page.charts)
    assert len(page.scripts) == 2 and "vegaEmbed" in page.scripts[0]  # the inlined bundle
    specs = json.loads(page.scripts[1].split("const specs = ", 1)[1].split(";\n", 1)[0])
    assert set(specs) == set(page.charts)
    assert chart_values(specs["chart-q1_top_category_by_country"])[0]["country"] == (
        "Peru</script><b>"
    )
    main = html.split("<main>", 1)[1].split("</main>", 1)[0]
    assert "art &amp; &lt;craft&gt;" in main and "<b>" not in main
    # the query id from the data contract next to each question, with its table
    for query_id, rows in EXPECTED_RESULTS.items():
        if query_id != "q1_top_category_by_country":
            section = html.split(f'data-query-id="{query_id}">', 1)[1].split("</section>", 1)[0]
            assert f'<span class="qid">{query_id}</span>' in section
            assert section.count("<tr>") == 1 + len(rows)
    # data quality: threshold, measured value and result of each check; the failed one named
    assert "0 duplicated" in html and "1 duplicated" in html
    assert html.count('class="badge bad">FAIL') == 1
    assert "1 / 2" in html  # checks passed in the latest run
    assert "silver.pin: no duplicate ind" in html


def test_cells_read_like_numbers() -> None:
    assert cell(2_000_000) == "2,000,000"
    assert cell(2016, "post_year") == "2016"
    assert cell(1_000_450.0) == "1,000,450"
    assert cell(437.5) == "437.5"
    assert cell(None) == "—"


def test_locations_and_s3_options() -> None:
    assert LakePaths("s3a://lake-bucket/lake/").report(date(2026, 1, 2)) == (
        "s3a://lake-bucket/lake/reports/2026-01-02/index.html"
    )
    assert delta_rs_uri("s3a://b/lake/gold/q1") == "s3://b/lake/gold/q1"
    assert delta_rs_uri("/tmp/lake") == "/tmp/lake"
    assert s3_location("s3://b/k/x.html") == ("b", "k/x.html")
    with pytest.raises(ValueError, match="not an S3 URI"):
        s3_location("/tmp/x")
    local = storage_options(get_settings())
    assert local["AWS_ENDPOINT_URL"] == get_settings().endpoint_url("s3")
    assert local["AWS_ALLOW_HTTP"] == "true"
    aws = storage_options(AwsSettings(aws_access_key_id=None, aws_secret_access_key=None))
    assert "AWS_ENDPOINT_URL" not in aws and "AWS_ACCESS_KEY_ID" not in aws


def test_the_cli_writes_the_file_and_prints_its_path(lake: Path) -> None:
    out = lake.parent / "out" / "report.html"
    arguments = ["report", "--lake", str(lake), "--landing", str(lake.parent / "landing")]
    result = CliRunner().invoke(app, [*arguments, "--prefix", PREFIX, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out.resolve())
    assert all(f'data-query-id="{q}"' in out.read_text() for q in QUERY_COLUMNS)


def test_the_cli_without_out_writes_under_the_lake_for_the_run_date(lake: Path) -> None:
    arguments = ["report", "--lake", str(lake), "--landing", str(lake.parent / "landing")]
    result = CliRunner().invoke(app, [*arguments, "--run-date", "2026-11-29"])
    assert result.exit_code == 0, result.output
    written = lake / "reports" / "2026-11-29" / "index.html"
    assert result.output.strip() == str(written)
    assert "run of 2026-11-29" in written.read_text()


def test_the_cli_rejects_a_bad_date_and_an_unwritable_target(lake: Path) -> None:
    bad_date = CliRunner().invoke(app, ["report", "--lake", str(lake), "--run-date", "29/11"])
    assert bad_date.exit_code == 2 and "run-date" in bad_date.output
    blocker = lake.parent / "file"
    blocker.write_text("")
    arguments = ["report", "--lake", str(lake), "--landing", str(lake.parent / "landing")]
    unwritable = CliRunner().invoke(app, [*arguments, "--out", str(blocker / "r.html")])
    assert unwritable.exit_code == 1 and "report failed" in unwritable.output
