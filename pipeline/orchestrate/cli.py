"""`pinpipe mwaa-bundle` (what MWAA takes)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.config.settings import PROJECT_ROOT


def mwaa_bundle(
    out: Annotated[Path, typer.Option(help="Folder to (re)create.")] = PROJECT_ROOT
    / "dist"
    / "mwaa",
    airflow_version: Annotated[
        str, typer.Option(help="MWAA's Airflow version (pins the constraints).")
    ] = "3.0.6",
    python_version: Annotated[str, typer.Option(help="MWAA's Python version.")] = "3.12",
) -> None:
    """Build the MWAA bundle: DAG folder, requirements.txt (Airflow constraints), startup.sh."""
    from pipeline.config import AwsSettings
    from pipeline.orchestrate.mwaa import build_bundle

    settings = AwsSettings()
    written = build_bundle(out, settings, airflow=airflow_version, python=python_version)
    for path in written:
        typer.echo(path.relative_to(out.parent) if path.is_relative_to(out.parent) else path)
    typer.echo(
        f"MWAA bundle in {out}: upload dags/ to the DAG folder, requirements.txt and startup.sh "
        "to the environment's bucket"
    )
    unset = [
        f"PINPIPE_{name.upper()}"
        for name in ("databricks_cluster_id", "databricks_code_root")
        if not getattr(settings, name)
    ]
    if unset:
        typer.echo(
            f"note: {' and '.join(unset)} not set when building: the DAG will not import on MWAA "
            "until startup.sh exports them",
            err=True,
        )


def register(app: typer.Typer) -> None:
    app.command("mwaa-bundle")(mwaa_bundle)
