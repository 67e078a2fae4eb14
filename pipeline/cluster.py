"""`pinpipe-cluster`: the commands a Spark cluster runs (the Databricks jobs' wheel entry point).

The full `pinpipe` CLI also registers the local stack, the emulator and the API, whose libraries
are extras the cluster never installs (pyproject `optional-dependencies`). This one registers only
the Spark jobs and the report, so it works with the wheel's own requirements plus the runtime's
Spark and Delta.
"""

from __future__ import annotations

import typer

from pipeline.report.cli import register as register_report
from pipeline.stream.cli import register as register_stream
from pipeline.transform.cli import register as register_transform

app = typer.Typer(
    name="pinpipe-cluster",
    help="The pipeline's Spark jobs (batch, stream, analytics) and the report, for a cluster.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

register_transform(app)
register_stream(app)
register_report(app)

if __name__ == "__main__":
    app()
