"""`pinpipe config docs` and `pinpipe config compose-env`: write or check the files generated from
the settings (docs/configuration.md, compose/pipeline.env)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.config.environment import COMPOSE_ENV_PATH, compose_env_text
from pipeline.config.reference import DOCS_PATH, render

WriteOption = Annotated[
    bool, typer.Option("--write", help="Write the file instead of printing it.")
]
CheckOption = Annotated[
    bool, typer.Option("--check", help="Exit 1 when the committed file is out of date.")
]


def _print_write_or_check(path: Path, text: str, command: str, write: bool, check: bool) -> None:
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            typer.echo(f"{path} is out of date: run `uv run pinpipe config {command} --write`")
            raise typer.Exit(1)
        typer.echo(f"{path} is up to date")
    elif write:
        path.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {path}")
    else:
        typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    config = typer.Typer(
        help="The settings: their documentation and the compose stack's environment.",
        no_args_is_help=True,
    )

    @config.command("docs")
    def docs(write: WriteOption = False, check: CheckOption = False) -> None:
        """Print docs/configuration.md as generated from the Settings field descriptions."""
        _print_write_or_check(DOCS_PATH, render(), "docs", write, check)

    @config.command("compose-env")
    def compose_env(write: WriteOption = False, check: CheckOption = False) -> None:
        """Print compose/pipeline.env: the docker target's settings every pipeline container
        reads, as the local stack's workloads get theirs."""
        _print_write_or_check(COMPOSE_ENV_PATH, compose_env_text(), "compose-env", write, check)

    app.add_typer(config, name="config")
