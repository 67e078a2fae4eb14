"""`pinpipe deploy plan|apply|destroy|env`: the aws target (`make deploy-plan|deploy|destroy`)."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from pipeline.deploy.errors import DeployError

if TYPE_CHECKING:  # imported by the commands: boto3 and the Databricks SDK load slowly
    from pipeline.deploy.run import Deployer

console = Console()
err = Console(stderr=True)
deploy_app = typer.Typer(help="Deploy a stage to AWS + Databricks (CloudFormation change sets).")

StageOpt = Annotated[str | None, typer.Option("--stage", help="stage name (default: dev)")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region")]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="AWS profile")]


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except DeployError as error:
        err.print(f"deploy: {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _deployer(
    stage: str | None, region: str | None, profile: str | None, cluster: bool = True
) -> Deployer:
    from pipeline.deploy import databricks
    from pipeline.deploy.aws import connect
    from pipeline.deploy.run import Deployer
    from pipeline.deploy.stage import StageConfig, StageState

    overrides = {
        k: v for k, v in {"stage": stage, "region": region, "profile": profile}.items() if v
    }
    config = StageConfig(**overrides)  # type: ignore[arg-type]
    aws, account = connect(config)
    workspace = (
        (lambda: databricks.workspace_client(config.databricks_profile))
        if config.databricks
        else None
    )
    deployer = Deployer(config, aws, StageState(config, account), console, workspace)
    deployer.refresh(cluster)
    return deployer


@deploy_app.command("plan")
def plan(stage: StageOpt = None, region: RegionOpt = None, profile: ProfileOpt = None) -> None:
    """Show what `apply` would create, change or replace; changes nothing."""
    with _one_line_errors(), tempfile.TemporaryDirectory(prefix="pinpipe-deploy-") as out:
        deployer = _deployer(stage, region, profile)
        built = deployer.build(Path(out))
        the_plan = deployer.plan(built)
        deployer.show(the_plan)
        deployer.discard(the_plan)


@deploy_app.command("apply")
def apply(
    stage: StageOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    auto_approve: Annotated[bool, typer.Option(help="apply without asking (CI)")] = False,
) -> None:
    """Plan, ask, then apply: stacks, artifacts (plugin, wheel, image, DAGs), Databricks jobs."""
    with _one_line_errors(), tempfile.TemporaryDirectory(prefix="pinpipe-deploy-") as out:
        deployer = _deployer(stage, region, profile)
        built = deployer.build(Path(out))
        the_plan = deployer.plan(built)
        deployer.show(the_plan)
        if not the_plan.changes_anything:
            deployer.discard(the_plan)
            return
        if not auto_approve:
            if not sys.stdin.isatty():
                deployer.discard(the_plan)
                raise DeployError("not a terminal, so no confirmation: pass AUTO_APPROVE=1")
            if not typer.confirm("apply this plan?"):
                deployer.discard(the_plan)
                raise typer.Exit(1)
        try:
            deployer.apply(the_plan, built)
        finally:  # change sets a failure left unexecuted
            deployer.discard(the_plan)
        _print_endpoints(deployer)


@deploy_app.command("destroy")
def destroy(
    stage: StageOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    delete_lake: Annotated[bool, typer.Option(help="also delete the lake bucket")] = False,
    auto_approve: Annotated[bool, typer.Option(help="destroy without asking (CI)")] = False,
) -> None:
    """Remove the stage; the lake bucket is kept unless --delete-lake."""
    with _one_line_errors():
        deployer = _deployer(stage, region, profile, cluster=False)
        what = f"stage {deployer.config.stage} in {deployer.config.region}"
        if not auto_approve:
            if not sys.stdin.isatty():
                raise DeployError("not a terminal, so no confirmation: pass AUTO_APPROVE=1")
            if not typer.confirm(f"destroy {what}?"):
                raise typer.Exit(1)
        removed = deployer.destroy(delete_lake)
        console.print(", ".join(removed) if removed else "nothing to remove")


@deploy_app.command("env")
def env(stage: StageOpt = None, region: RegionOpt = None, profile: ProfileOpt = None) -> None:
    """Print, as JSON, the configuration each component gets from the stage's outputs."""
    from pipeline.deploy import components

    with _one_line_errors():
        deployer = _deployer(stage, region, profile)
        state = deployer.state
        result: dict[str, object] = {}
        for name, build in (
            ("api", components.api_env),
            ("connect", components.connect_env),
            ("databricks", components.databricks_env),
        ):
            try:
                result[name] = build(state)
            except KeyError as missing:
                result[name] = f"unknown until deployed ({missing})"
        print(json.dumps(result, indent=2, sort_keys=True))


def _print_endpoints(deployer: Deployer) -> None:
    outputs = deployer.state.outputs
    if "gateway" in outputs:
        gateway = outputs["gateway"]
        console.print(f"API: {gateway.get('ApiUrl')} (requests need the header x-api-key)")
        console.print(
            "API key: aws secretsmanager get-secret-value --query SecretString --output text "
            f"--secret-id {gateway.get('ApiKeySecretName')}"
        )
    if "mwaa" in outputs:
        console.print(f"Airflow: https://{outputs['mwaa'].get('WebserverUrl')}")


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")
