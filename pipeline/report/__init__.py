"""The HTML report of a lake: gold charts and tables, data quality with history, pipeline counts.

`paths` (where things live, no heavy imports: the Spark quality job uses it), `lake` (reading
Delta tables with delta-rs, no JVM), `collect` (gathering a `ReportData`), `charts` (one Altair
chart per gold query), `render` (one self-contained HTML file), `cli` (`pinpipe report`).
"""
