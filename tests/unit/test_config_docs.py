"""docs/configuration.md is generated from the Settings field descriptions and kept current."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import reference
from pipeline.config.settings import PROJECT_ROOT, Settings


def test_the_committed_file_is_current() -> None:
    committed = reference.DOCS_PATH.read_text(encoding="utf-8")
    assert committed == reference.render(), (
        "docs/configuration.md is out of date: run `uv run pinpipe config docs --write`"
    )


def test_every_setting_has_a_description() -> None:
    assert reference.fields_without_description() == []


def test_every_variable_of_every_setting_is_listed() -> None:
    text = reference.render()
    for name, field in Settings.model_fields.items():
        for variable in reference.env_names(name, field):
            assert f"`{variable}`" in text, f"{name}: {variable} missing"


def test_variables_follow_aliases_and_the_prefix() -> None:
    fields = Settings.model_fields
    assert reference.env_names("lake_bucket", fields["lake_bucket"]) == ["PINPIPE_LAKE_BUCKET"]
    assert reference.env_names("s3_endpoint_url", fields["s3_endpoint_url"]) == [
        "AWS_ENDPOINT_URL_S3",
        "PINPIPE_S3_ENDPOINT_URL",
    ]


def test_sections_come_from_the_headings_in_the_settings_class() -> None:
    titles = reference.section_titles()
    assert set(titles) == set(Settings.model_fields)
    assert titles["landing_flush_max_records"].startswith("the landing zone")
    assert titles["api_max_records"] == "the ingestion API"


def test_defaults_differing_per_target_are_shown_per_target() -> None:
    assert reference.defaults("batch_runner") == (
        "local: `spark-submit`<br>docker: `spark-submit`<br>aws: `databricks`"
    )
    assert reference.defaults("kafka_port") == "`9092`"


def test_the_output_does_not_depend_on_the_checkout_folder() -> None:
    text = reference.render()
    assert str(PROJECT_ROOT) not in text
    assert "| `PINPIPE_RUN_DIR` | `.run/` |" in text


@pytest.mark.parametrize(("content", "exit_code"), [(None, 0), ("stale\n", 1)])
def test_check_fails_only_when_the_file_is_out_of_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, exit_code: int
) -> None:
    target = tmp_path / "configuration.md"
    target.write_text(content if content is not None else reference.render(), encoding="utf-8")
    monkeypatch.setattr("pipeline.config.cli.DOCS_PATH", target)
    result = CliRunner().invoke(app, ["config", "docs", "--check"])
    assert result.exit_code == exit_code, result.output
    if exit_code:
        assert "pinpipe config docs --write" in result.output


def test_write_produces_what_check_accepts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "configuration.md"
    monkeypatch.setattr("pipeline.config.cli.DOCS_PATH", target)
    runner = CliRunner()
    assert runner.invoke(app, ["config", "docs", "--write"]).exit_code == 0
    assert target.read_text(encoding="utf-8") == reference.render()
    assert runner.invoke(app, ["config", "docs", "--check"]).exit_code == 0
