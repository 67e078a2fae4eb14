"""The gold results (query id -> rows) for people: a terminal table per query, or CSV.

Shared by `pinpipe analytics` and `pinpipe demo`; imports no Spark at load time (the API image,
which runs the whole CLI, has none).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from rich.console import Console
from rich.table import Table

Row = dict[str, Any]


def render_csv(results: dict[str, list[Row]], with_titles: bool) -> str:
    """CSV per query; several queries are separated by a blank line and a `# query_id` line."""
    # imported here: the CLI must load without pyspark (the API image has none)
    from pipeline.lake import QUERY_COLUMNS

    out = io.StringIO()
    for position, (query_id, rows) in enumerate(results.items()):
        if with_titles:
            if position:
                out.write("\n")
            out.write(f"# {query_id}\n")
        writer = csv.DictWriter(out, fieldnames=list(QUERY_COLUMNS[query_id]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def render_tables(results: dict[str, list[Row]], console: Console) -> None:
    from pipeline.lake import QUERY_COLUMNS

    for query_id, rows in results.items():
        table = Table(title=query_id, title_justify="left")
        for column in QUERY_COLUMNS[query_id]:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if value is None else str(value) for value in row.values()))
        console.print(table)
