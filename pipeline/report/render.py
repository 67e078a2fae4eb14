"""One self-contained HTML file from a `ReportData`: styles and the Vega-Embed bundle inlined.

The charts are Vega-Lite specs (Altair) drawn by Vega-Embed in the browser, as Altair's own
`inline` HTML template does; the bundle comes from `vl-convert` (shipped in its wheel), so the
file needs no network when it is opened.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from functools import cache
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import jinja2
import vl_convert
from altair.utils._importers import vl_version_for_vl_convert
from markupsafe import Markup

from pipeline.lake import QUERY_COLUMNS
from pipeline.report import charts
from pipeline.report.collect import ReportData

TEMPLATE = "report.html.j2"


@cache
def vega_embed_bundle() -> str:
    """Vega, Vega-Lite (Altair's version) and Vega-Embed as one script, from vl-convert.

    Bundling takes vl-convert several seconds: the result is kept in the temp folder, one file
    per vl-convert and Vega-Lite version.
    """
    version = vl_version_for_vl_convert()
    cached = (
        Path(tempfile.gettempdir())
        / f"pinpipe-vega-embed-{package_version('vl-convert-python')}-{version}.js"
    )
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    # The stub wants a snippet; without one (as Altair calls it) the bundle defines vegaEmbed.
    bundle = str(vl_convert.javascript_bundle(vl_version=version))  # type: ignore[call-arg]
    # In an inline <script>, only "</script" could end it early.
    bundle = bundle.replace("</script", "<\\/script")
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(bundle, encoding="utf-8")
    partial.replace(cached)  # atomic: concurrent reports never read half a file
    return bundle


def script_json(value: Any) -> Markup:
    """JSON safe inside an inline <script> element."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return Markup(text.replace("</", "<\\/"))  # "</" escaped just above


def cell(value: Any, column: str = "") -> str:
    """A table cell: thousands separators (not in years), medians without needless decimals."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and "year" in column:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.1f}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S} UTC"
    return str(value)


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{seconds:.1f}s"


def chart_id(query_id: str) -> str:
    return f"chart-{query_id}"


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["cell"] = cell
    environment.filters["duration"] = duration
    return environment


def render(data: ReportData) -> str:
    """The report as one HTML document."""
    specs: dict[str, dict[str, Any]] = {}
    for query_id, rows in data.gold.items():
        if rows:
            specs[chart_id(query_id)] = charts.spec(charts.gold_chart(query_id, rows))
    if data.quality_runs:
        specs["chart-quality-history"] = charts.spec(
            charts.quality_history_chart(data.quality_runs)
        )
    specs["chart-layers"] = charts.spec(charts.layer_counts_chart(data.counts))
    failed = [row for row in data.quality if not row["passed"]]
    template = _environment().get_template(TEMPLATE)
    return template.render(
        data=data,
        counts=data.counts,
        questions=charts.QUESTIONS,
        columns=QUERY_COLUMNS,
        chart_id=chart_id,
        failed=failed,
        gold_present=sum(1 for rows in data.gold.values() if rows),
        specs=script_json(specs),
        bundle=Markup(vega_embed_bundle()),  # vl-convert's own bundle, trusted
    )
