"""The HTML report of a real run, rendered by headless Chromium (Debian's, driven by Playwright).

The batch job runs on the landed objects of `tests/integration/test_batch_job.py`, the quality
job checks the lake twice (so there is history), then `pinpipe report` writes the file. Chromium
opens it from disk with the network cut off: no console error, one drawn chart per query, and
a screenshot for the CI log.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, sync_playwright
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config.settings import topic_names
from pipeline.lake import QUERY_COLUMNS
from pipeline.transform import quality
from pipeline.transform.job import run_batch
from tests.support.landed_data import (
    EXPECTED_RESULTS,
    FIRST_LANDING,
    PREFIX,
    landed_objects,
    write_folder,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

CHROMIUM = "/usr/bin/chromium"
# Flags that work in a container without a GPU, a sandbox or any network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / ".run" / "test-artifacts" / "report.png"


@dataclass
class Run:
    landing: Path
    lake: str
    report: Path


@pytest.fixture(scope="module")
def real_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Landed objects → batch job → two quality runs → `pinpipe report --lake --out`."""
    root = tmp_path_factory.mktemp("report")
    landing, lake = root / "landing", str(root / "lake")
    write_folder(landing, landed_objects(PREFIX, FIRST_LANDING, broken=True))
    run_batch(spark, str(landing), lake, topic_names(PREFIX))
    quality.run(lake)
    quality.run(lake)
    ledger = root / "ledger.jsonl"
    entries = [{"table": table, "id": ind} for table in ("pin", "geo", "user") for ind in range(8)]
    ledger.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    out = root / "report.html"
    result = CliRunner().invoke(
        app,
        [
            "report",
            *("--lake", lake, "--landing", str(landing), "--prefix", PREFIX),
            *("--out", str(out), "--ledger", str(ledger)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    return Run(landing, lake, out)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} missing: `apt-get install chromium` (.ci/run installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    yield context.new_page()
    context.close()


def test_the_report_renders_offline_one_chart_per_query_without_console_errors(
    real_run: Run, page: Page
) -> None:
    problems: list[str] = []
    requests: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    def on_request(route: Route) -> None:
        requests.append(route.request.url)
        route.abort()

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.route("http*://**", on_request)  # anything from the network would be a defect
    page.goto(real_run.report.as_uri())
    page.wait_for_selector("body[data-charts-rendered], body[data-charts-failed]")

    assert page.get_attribute("body", "data-charts-failed") is None
    assert problems == [] and requests == []
    sections = page.locator("section.query")
    assert sections.count() == len(QUERY_COLUMNS)
    for index in range(sections.count()):
        section = sections.nth(index)
        query_id = section.get_attribute("data-query-id")
        assert query_id in QUERY_COLUMNS
        assert query_id in section.locator(".qid").inner_text()
        # exactly one drawn chart, with marks in it, per query container
        assert section.locator(".chart > svg").count() == 1, query_id
        assert section.locator(".chart svg .mark-rect, .chart svg .mark-line path").count() > 0
        # its table: one row per gold row, in the data contract's columns
        headers = section.locator("thead th").all_inner_texts()
        assert headers == list(QUERY_COLUMNS[query_id]), query_id
        assert section.locator("tbody tr").count() == len(EXPECTED_RESULTS[query_id]), query_id

    # data quality: every check of the latest run passed, and two runs of history
    checks = page.locator("#quality-checks tbody tr")
    assert checks.count() == 3 * 3 + 3 * len(QUERY_COLUMNS)
    assert page.locator("#quality-checks .badge.bad").count() == 0
    assert page.locator("#quality-runs tbody tr").count() == 2
    assert page.locator("#chart-quality-history > svg").count() == 1
    # counts: ledger, landed objects, silver rows and the three broken lines rejected
    counts = {
        row.locator("td").first.inner_text().split()[0]: row.locator("td").all_inner_texts()[1:]
        for row in page.locator("#counts tbody tr").all()
    }
    assert counts["pin"][0] == "8" and counts["pin"][1] == "2"  # posted, landed objects
    assert counts["pin"][4] == "6"  # silver rows: ids 1-6 (id 4 kept: only its pin is broken)
    assert page.locator("#rejected tbody tr").count() == 3 + 1  # three reasons, stream: none

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    print(f"report screenshot: {SCREENSHOT}")
    shutil.copy(real_run.report, SCREENSHOT.with_suffix(".html"))
