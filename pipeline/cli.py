"""`pinpipe`: the one command-line entry point. Each stage registers its own subcommands."""

from __future__ import annotations

import typer

from pipeline.stack.cli import register as register_stack

app = typer.Typer(
    name="pinpipe",
    help="Pinterest-style event pipeline: local stack, emulator, API, batch and stream jobs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

register_stack(app)

if __name__ == "__main__":
    app()
