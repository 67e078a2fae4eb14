"""One Altair (Vega-Lite) chart per gold query, chosen for the result's shape (pure functions).

ranked bars: the "top per country" queries (q1, q3a, q3b); yearly lines: the 2018-2022 and
2015-2020 series (q2, q6, q7); grouped bars: the age-group queries (q4, q5); a heat map of age
group by joining year for q8. Plus the quality history and the rows-per-layer chart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import altair as alt

from pipeline.report.collect import Counts, QualityRun
from pipeline.report.lake import Row

AGE_GROUPS = ["18-24", "25-35", "36-50", "+50"]  # data contract §4, in age order
TOP_N = 15  # ranked bars show the leaders; the table beside the chart has every row
WIDTH = 440
BAR_STEP = 20
PALETTE: Final = "tableau10"
PASS_FAIL = alt.Scale(domain=["passed", "failed"], range=["#3a9d5d", "#d64541"])

# The question each query answers (data contract §4), shown above its chart.
QUESTIONS: dict[str, str] = {
    "q1_top_category_by_country": "Most popular category in each country",
    "q2_top_category_by_year": "Most popular category each post year, 2018-2022",
    "q3a_top_user_by_country": "User with the most followers in each country",
    "q3b_top_country_by_followers": "Country of the user with the most followers",
    "q4_top_category_by_age_group": "Most popular category per age group",
    "q5_median_followers_by_age_group": "Median follower count per age group",
    "q6_users_joined_by_year": "Users joined per year, 2015-2020",
    "q7_median_followers_by_join_year": "Median follower count by joining year, 2015-2020",
    "q8_median_followers_by_age_group_and_join_year": (
        "Median follower count per age group and joining year, 2015-2020"
    ),
}

Chart = alt.Chart | alt.LayerChart


def _title(column: str) -> str:
    return column.replace("_", " ")


def _axis(rows: list[Row], value: str) -> alt.Axis:
    """A value axis; whole-number counts with a small maximum get one tick per unit at most
    (Vega would draw 0.5 steps for a maximum of 2)."""
    values = [row[value] for row in rows if row[value] is not None]
    largest = max(values, default=0)
    if all(isinstance(v, int) for v in values) and 0 < largest < 5:
        return alt.Axis(format="d", tickCount=int(largest))
    return alt.Axis(format="~s")


def ranked_bars(rows: list[Row], label: str, value: str, note: str, noun: str) -> Chart:
    """Horizontal bars, largest first, each labelled with `note` (the winning name)."""
    top = sorted(rows, key=lambda row: -(row[value] or 0))[:TOP_N]
    base = alt.Chart(alt.InlineData(values=top))
    # an explicit order (the rows are ranked above): one sort for both layers
    y = alt.Y(f"{label}:N", sort=[row[label] for row in top], title=None)
    x = alt.X(f"{value}:Q", title=_title(value), axis=_axis(top, value))
    tooltip = [alt.Tooltip(f"{c}:N" if c != value else f"{c}:Q", format="" if c != value else ",")
               for c in (label, note, value) if c]  # fmt: skip
    bars = base.mark_bar(cornerRadiusEnd=3).encode(
        y=y, x=x, color=alt.Color(f"{note}:N", legend=None, scale=alt.Scale(scheme=PALETTE)),
        tooltip=tooltip,
    )  # fmt: skip
    labels = base.mark_text(align="left", dx=4, fontSize=11, color="#333").encode(
        y=y, x=x, text=alt.Text(f"{note}:N")
    )
    chart: Chart = (bars + labels).properties(width=WIDTH - 120, height=alt.Step(BAR_STEP))
    if len(rows) > len(top):
        shown = f"top {len(top)} of {len(rows)} {noun}"
        chart = chart.properties(title=alt.Title(shown, anchor="start", fontSize=11))
    return chart


def yearly_line(rows: list[Row], value: str, note: str | None = None) -> Chart:
    """A line over the years, a point per year labelled with the value (or `note`)."""
    base = alt.Chart(alt.InlineData(values=rows))
    x = alt.X("post_year:O", title="year", axis=alt.Axis(labelAngle=0))
    y = alt.Y(f"{value}:Q", title=_title(value), axis=_axis(rows, value))
    tooltip = [alt.Tooltip("post_year:O"), alt.Tooltip(f"{value}:Q", format=",")]
    if note:
        tooltip.append(alt.Tooltip(f"{note}:N"))
    line = base.mark_line(point=alt.OverlayMarkDef(size=70), strokeWidth=2.5).encode(
        x=x, y=y, tooltip=tooltip
    )
    text = alt.Text(f"{note}:N") if note else alt.Text(f"{value}:Q", format=".3~s")
    labels = base.mark_text(dy=-12, fontSize=11, color="#333").encode(x=x, y=y, text=text)
    chart: Chart = (line + labels).properties(width=WIDTH, height=240)
    return chart


def age_group_bars(rows: list[Row], value: str, group: str | None = None) -> Chart:
    """Bars grouped by age group, in age order; side by side per `group` when an age group has
    several rows, coloured by `group` (named on the bar) when given."""
    base = alt.Chart(alt.InlineData(values=rows))
    x = alt.X("age_group:N", sort=AGE_GROUPS, title="age group", axis=alt.Axis(labelAngle=0))
    y = alt.Y(f"{value}:Q", title=_title(value), axis=_axis(rows, value))
    color_field = group or "age_group"
    color = alt.Color(
        f"{color_field}:N",
        scale=alt.Scale(scheme=PALETTE),
        legend=alt.Legend(orient="bottom", title=_title(color_field)) if group else None,
    )
    encoding: dict[str, Any] = {"x": x, "y": y}
    if group and len({row["age_group"] for row in rows}) < len(rows):
        encoding["xOffset"] = alt.XOffset(f"{group}:N")
    tooltip = [alt.Tooltip("age_group:N"), alt.Tooltip(f"{value}:Q", format=",")]
    if group:
        tooltip.append(alt.Tooltip(f"{group}:N"))
    bars = base.mark_bar(cornerRadiusEnd=3, width=alt.RelativeBandSize(0.6)).encode(
        **encoding, color=color, tooltip=tooltip
    )
    text = alt.Text(f"{group}:N") if group else alt.Text(f"{value}:Q", format=".3~s")
    labels = base.mark_text(dy=-8, fontSize=11, color="#333").encode(**encoding, text=text)
    chart: Chart = (bars + labels).properties(width=WIDTH, height=240)
    return chart


def heat_map(rows: list[Row]) -> Chart:
    """Age group by joining year, coloured by the median follower count, values written in."""
    base = alt.Chart(alt.InlineData(values=rows)).encode(
        x=alt.X("post_year:O", title="joining year", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("age_group:N", sort=AGE_GROUPS, title="age group"),
    )
    cells = base.mark_rect(cornerRadius=3).encode(
        color=alt.Color(
            "median_follower_count:Q",
            title="median followers",
            scale=alt.Scale(scheme="blues", type="symlog"),
            legend=alt.Legend(orient="bottom", format="~s", gradientLength=220),
        ),
        tooltip=[
            alt.Tooltip("age_group:N"),
            alt.Tooltip("post_year:O"),
            alt.Tooltip("median_follower_count:Q", format=","),
        ],
    )
    values = [row["median_follower_count"] or 0 for row in rows]
    dark_from = sorted(values)[len(values) // 2] if values else 0
    labels = base.mark_text(fontSize=11).encode(
        text=alt.Text("median_follower_count:Q", format=".3~s"),
        color=alt.condition(
            alt.datum.median_follower_count > dark_from, alt.value("white"), alt.value("#222")
        ),
    )
    chart: Chart = (cells + labels).properties(width=WIDTH, height=alt.Step(44))
    return chart


GOLD_CHARTS: dict[str, Callable[[list[Row]], Chart]] = {
    "q1_top_category_by_country": lambda r: ranked_bars(
        r, "country", "category_count", "category", "countries"
    ),
    "q2_top_category_by_year": lambda r: yearly_line(r, "category_count", "category"),
    "q3a_top_user_by_country": lambda r: ranked_bars(
        r, "country", "follower_count", "poster_name", "countries"
    ),
    "q3b_top_country_by_followers": lambda r: ranked_bars(
        r, "country", "follower_count", "country", "countries"
    ),
    "q4_top_category_by_age_group": lambda r: age_group_bars(r, "category_count", "category"),
    "q5_median_followers_by_age_group": lambda r: age_group_bars(r, "median_follower_count"),
    "q6_users_joined_by_year": lambda r: yearly_line(r, "number_users_joined"),
    "q7_median_followers_by_join_year": lambda r: yearly_line(r, "median_follower_count"),
    "q8_median_followers_by_age_group_and_join_year": heat_map,
}


def gold_chart(query_id: str, rows: list[Row]) -> Chart:
    return GOLD_CHARTS[query_id](rows)


def quality_history_chart(runs: list[QualityRun]) -> Chart:
    """Checks passed and failed per quality run, stacked, oldest run first."""
    values = [
        {"run": f"{run.run_at:%m-%d %H:%M}", "run_id": run.run_id, "result": result, "checks": n}
        for run in runs
        for result, n in (("passed", run.passed), ("failed", run.failed))
        if n
    ]
    chart: Chart = (
        alt.Chart(alt.InlineData(values=values))
        .mark_bar()
        .encode(
            x=alt.X("run:O", title="quality run (UTC)", sort=None, axis=alt.Axis(labelAngle=-40)),
            y=alt.Y("checks:Q", title="checks"),
            color=alt.Color("result:N", scale=PASS_FAIL, legend=alt.Legend(orient="top")),
            tooltip=["run_id:N", "result:N", "checks:Q"],
        )
        .properties(width=alt.Step(26), height=160)
    )
    return chart


def layer_counts_chart(counts: Counts) -> Chart:
    """Rows per table at each layer: posted (ledger), bronze, silver, stream."""
    layers: list[tuple[str, Mapping[str, int | None] | None]] = [
        ("posted", counts.records_posted),
        ("bronze", counts.bronze),
        ("silver", counts.silver),
        ("stream", counts.stream),
    ]
    values = [
        {"table": table, "layer": layer, "rows": rows}
        for layer, per_table in layers
        if per_table
        for table, rows in per_table.items()
        if rows is not None
    ]
    order = [layer for layer, _ in layers]
    chart: Chart = (
        alt.Chart(alt.InlineData(values=values))
        .mark_bar(cornerRadiusEnd=3)
        .encode(
            x=alt.X("table:N", title=None, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("layer:N", sort=order),
            y=alt.Y("rows:Q", title="rows", axis=alt.Axis(format="~s")),
            color=alt.Color(
                "layer:N",
                sort=order,
                scale=alt.Scale(scheme=PALETTE),
                legend=alt.Legend(orient="top"),
            ),
            tooltip=["table:N", "layer:N", alt.Tooltip("rows:Q", format=",")],
        )
        .properties(width=WIDTH - 80, height=180)
    )
    return chart


def spec(chart: Chart) -> dict[str, Any]:
    """The Vega-Lite spec (validated by Altair) with the report's look."""
    configured = chart.configure_view(stroke=None).configure_axis(
        labelFontSize=11, titleFontSize=11, titleColor="#555", gridColor="#eee"
    )
    result: dict[str, Any] = configured.to_dict()
    return result
