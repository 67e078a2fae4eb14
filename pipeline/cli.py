"""`pinpipe`: the one command-line entry point. Each stage registers its own subcommands."""

from __future__ import annotations

import typer

from pipeline.config.cli import register as register_config
from pipeline.demo.cli import register as register_demo
from pipeline.deploy.cli import register as register_deploy
from pipeline.ingest.cli import register as register_ingest
from pipeline.land.cli import register_commands as register_land
from pipeline.orchestrate.cli import register as register_orchestrate
from pipeline.report.cli import register as register_report
from pipeline.source.cli import register as register_source
from pipeline.stack.cli import register as register_stack
from pipeline.stream.cli import register as register_stream
from pipeline.transform.cli import register as register_transform

app = typer.Typer(
    name="pinpipe",
    help="Pinterest-style event pipeline: local stack, emulator, API, batch and stream jobs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

register_source(app)
register_stack(app)
register_ingest(app)
register_land(app)
register_transform(app)
register_stream(app)
register_deploy(app)
register_demo(app)
register_orchestrate(app)
register_report(app)
register_config(app)

if __name__ == "__main__":
    app()
