"""Settings → environment variables: the one place a Settings object becomes the environment of a
process that reads it back with `get_settings()` — a workload of the local stack, Airflow's
processes, a compose container (compose/pipeline.env), an MWAA worker, a component on aws.

Also the reverse, for checks and for the deploy: Settings built from given values or from a given
environment only, never from this process's environment or `.env`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection, Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from pipeline.config.settings import PROJECT_ROOT, DockerSettings, Settings

AnySettings = TypeVar("AnySettings", bound=Settings)

COMPOSE_ENV_PATH = PROJECT_ROOT / "compose" / "pipeline.env"
# What compose passes from the user's .env to every pipeline container (docker-compose.yml,
# `x-pipeline-env`, interpolated there): the generated file holds every other setting.
COMPOSE_FROM_DOT_ENV = (
    "topic_prefix",
    "lake_bucket",
    "landing_flush_interval_ms",
    "feed_ids_per_second",
    "aws_region",
    "s3_endpoint_url",
    "kinesis_endpoint_url",
)
# A path of this checkout: each image has its own (the images' /app/.cache)
HOST_ONLY = ("cache_dir",)
CONTAINER_RUN_DIR = Path("/var/lib/pinpipe")  # a volume per state folder (see the compose file)

# Credentials are inherited from the environment (or the AWS credential chain), never written into
# an environment that ends up in a file, a supervisord config or a CloudFormation parameter.
CREDENTIALS = frozenset({"aws_access_key_id", "aws_secret_access_key", "api_keys"})


def variable_name(field: str) -> str:
    """The variable a process reads `field` from: the AWS SDKs' own name where the field has one
    (`AWS_REGION`, `AWS_ENDPOINT_URL_S3`, ...), else `PINPIPE_<FIELD>`."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"PINPIPE_{field.upper()}"


def _rendered(value: object) -> str | None:
    """A value as its variable holds it; None for what is not written (unset, secret, a list)."""
    if value is None or isinstance(value, SecretStr | list | dict):
        return None
    return str(value)


def settings_environment(settings: Settings, only: Collection[str] | None = None) -> dict[str, str]:
    """The environment a process needs to build these settings itself: one variable per field
    (every field, or the fields named in `only`), plus `PINPIPE_TARGET` always.

    Unset (None) values, credentials and SecretStr fields are left out. The full environment of a
    local-target process also pins its Spark drivers to loopback (`SPARK_LOCAL_IP`).
    """
    unknown = set(only or ()) - set(Settings.model_fields)
    if unknown:
        raise ValueError(f"not settings fields: {sorted(unknown)}")
    fields = ["target", *(name for name in Settings.model_fields if name != "target")]
    environment: dict[str, str] = {}
    for name in fields:
        if name in CREDENTIALS or (only is not None and name not in only and name != "target"):
            continue
        value = _rendered(getattr(settings, name))
        if value is not None:
            environment[variable_name(name)] = value
    if only is None and settings.target == "local":
        # Spark drivers (the stream job, the DAG's spark-submit tasks) and their UI listen on
        # loopback only, like the stack's servers; without it the UI binds to all interfaces
        environment["SPARK_LOCAL_IP"] = "127.0.0.1"
    return environment


def env_file_text(environment: Mapping[str, str], header: str = "") -> str:
    """KEY=VALUE lines, sorted, as docker's and compose's env files read them."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [f"{key}={value}" for key, value in sorted(environment.items())]
    return "".join(f"{line}\n" for line in lines)


@cache
def _isolated(settings_class: type[AnySettings]) -> type[AnySettings]:
    """`settings_class` reading only its init values and the env file it is given."""

    class Isolated(settings_class):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, dotenv_settings)

    Isolated.__name__ = Isolated.__qualname__ = settings_class.__name__
    return Isolated


def settings_with(settings_class: type[AnySettings], **values: Any) -> AnySettings:
    """`settings_class`'s defaults with `values`: nothing from the environment or `.env`."""
    settings: AnySettings = _isolated(settings_class)(_env_file=None, **values)
    return settings


def settings_from_environment(
    settings_class: type[AnySettings], environment: Mapping[str, str]
) -> AnySettings:
    """The settings a process whose whole environment is `environment` builds (no `.env`)."""
    with tempfile.TemporaryDirectory() as folder:
        env_file = Path(folder) / "environment"
        env_file.write_text(env_file_text(environment), encoding="utf-8")
        settings: AnySettings = _isolated(settings_class)(_env_file=env_file)
    return settings


def compose_environment() -> dict[str, str]:
    """The docker target's settings every pipeline container reads (compose/pipeline.env)."""
    settings = settings_with(DockerSettings, run_dir=CONTAINER_RUN_DIR)
    excluded = {*COMPOSE_FROM_DOT_ENV, *HOST_ONLY}
    return settings_environment(
        settings, only=[name for name in Settings.model_fields if name not in excluded]
    )


def compose_env_text() -> str:
    """compose/pipeline.env as `pinpipe config compose-env --write` writes it."""
    header = (
        "Generated by `pinpipe config compose-env --write` from the docker target's settings\n"
        "(pipeline/config/environment.py): do not edit; a unit test fails when it is stale.\n"
        "Every pipeline container reads these (env_file in docker-compose.yml); what a user sets\n"
        "in .env (topic prefix, bucket, flush interval, feed rate, region, endpoints) compose\n"
        "passes itself, and it wins over this file."
    )
    return env_file_text(compose_environment(), header=header)
