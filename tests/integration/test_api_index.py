"""`GET /` of the API (a real `pinpipe api` process): links to the docs and health endpoints,
as JSON for clients and as a page for a browser."""

from __future__ import annotations

from pathlib import Path

import requests

from pipeline.config import get_settings
from tests.support.api import api_process

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_the_root_links_to_the_docs_and_health_endpoints(
    test_env: dict[str, str], tmp_path: Path
) -> None:
    with api_process(get_settings(), tmp_path / "api.log") as (url, _process):
        answer = requests.get(f"{url}/", timeout=30)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
        body = answer.json()
        assert body["name"] == "pinpipe ingestion API"
        links = body["links"]
        assert links["docs"] == "/openapi/swagger" and links["health"] == "/healthz"
        assert links["ready"] == "/readyz"  # its answer depends on the broker: not asked here
        for what in ("docs", "openapi", "health", "metrics"):
            assert requests.get(f"{url}{links[what]}", timeout=30).status_code == 200, what

        page = requests.get(f"{url}/", headers={"Accept": BROWSER_ACCEPT}, timeout=30)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert '<a href="/openapi/swagger">docs</a>' in page.text
        assert '<a href="/healthz">health</a>' in page.text

        document = requests.get(f"{url}/openapi/openapi.json", timeout=30).json()
        assert "/" in document["paths"]
        assert requests.post(f"{url}/", timeout=30).status_code == 405
