"""`pinpipe config docs`: write or check docs/configuration.md (generated from the settings)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.config.reference import DOCS_PATH, render


def register(app: typer.Typer) -> None:
    config = typer.Typer(help="The settings: their documentation.", no_args_is_help=True)

    @config.command("docs")
    def docs(
        write: Annotated[
            bool, typer.Option("--write", help=f"Write {DOCS_PATH.name} instead of printing it.")
        ] = False,
        check: Annotated[
            bool, typer.Option("--check", help="Exit 1 when the committed file is out of date.")
        ] = False,
    ) -> None:
        """Print docs/configuration.md as generated from the Settings field descriptions."""
        text = render()
        if check:
            current = DOCS_PATH.read_text(encoding="utf-8") if DOCS_PATH.exists() else ""
            if current != text:
                typer.echo(f"{DOCS_PATH} is out of date: run `uv run pinpipe config docs --write`")
                raise typer.Exit(1)
            typer.echo(f"{DOCS_PATH} is up to date")
        elif write:
            DOCS_PATH.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {DOCS_PATH}")
        else:
            typer.echo(text, nl=False)

    app.add_typer(config, name="config")
