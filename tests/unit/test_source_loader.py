"""Loading CSV/JSON exports of the original tables, and `pinpipe seed` itself."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from pipeline.source import database
from pipeline.source.cli import register
from pipeline.source.loader import (
    ExportFormatError,
    export_tables,
    find_exports,
    load_exports,
    parse_datetime,
    seed_database,
)

ROWS = 300


def connect(path: Path) -> Engine:
    return database.connect(f"sqlite:///{path}")


def contents(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    return {name: list(database.iter_table(engine, name)) for name in database.TABLES}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = connect(tmp_path_factory.mktemp("generated") / "source.db")
    seed_database(engine, ROWS, seed=9, workers=0)
    return engine


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_exports_load_back_to_identical_tables(generated: Engine, tmp_path: Path, fmt: str) -> None:
    exported = export_tables(generated, tmp_path / "export", fmt)
    assert find_exports(tmp_path / "export") == exported
    target = connect(tmp_path / "loaded.db")
    progress: list[int] = []
    result = load_exports(target, exported, batch_size=128, on_progress=progress.append)
    assert result.rows == {"pin": ROWS, "geo": ROWS, "user": ROWS}
    assert sum(progress) == 3 * ROWS and max(progress) == 128
    assert result.ignored_columns == {}
    assert contents(target) == contents(generated)


def test_json_array_and_phpmyadmin_exports(generated: Engine, tmp_path: Path) -> None:
    exported = export_tables(generated, tmp_path / "lines", "jsonl")
    folder = tmp_path / "json"
    folder.mkdir()
    for name, path in exported.items():
        records = [json.loads(line) for line in path.read_text().splitlines()]
        table = database.TABLES[name].name
        if name == "geo":  # phpMyAdmin wraps the rows of a table in a header structure
            document: Any = [
                {"type": "header", "version": "5.2.1"},
                {"type": "database", "name": "pinterest"},
                {"type": "table", "name": table, "database": "pinterest", "data": records},
            ]
        else:
            document = records
        (folder / f"{table}.json").write_text(json.dumps(document))
    target = connect(tmp_path / "loaded.db")
    load_exports(target, find_exports(folder))
    assert contents(target) == contents(generated)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def small_exports(folder: Path, user_rows: list[list[Any]] | None = None) -> dict[str, Path]:
    """A pandas-style export: a leading unnamed index column and `ind` in pinterest_data."""
    folder.mkdir(exist_ok=True)
    pin_header = ["", "ind", "unique_id", "title", "description", "poster_name",
                  "follower_count", "tag_list", "is_image_or_video", "image_src", "downloaded",
                  "save_location", "category"]  # fmt: skip
    write_csv(
        folder / "pinterest_data.csv",
        pin_header,
        [[0, 7, "u-1", "A title", "", "Jane Doe", "15k", "a,b", "image", "https://x/y.jpg",
          "1.0", "Local save in /data/art", "art"]],
    )  # fmt: skip
    write_csv(
        folder / "geolocation_data.csv",
        ["ind", "timestamp", "latitude", "longitude", "country"],
        [[7, "2020-08-28T03:52:47", "-5.34445", "-177.924", "Cocos (Keeling) Islands"]],
    )
    write_csv(
        folder / "user_data.csv",
        ["ind", "first_name", "last_name", "age", "date_joined"],
        user_rows or [[7, "Jane", "Doe", 31, "2016-01-02 03:04:05"]],
    )
    return find_exports(folder)


def test_pandas_style_csv_with_aliases_and_extra_columns(tmp_path: Path) -> None:
    target = connect(tmp_path / "loaded.db")
    result = load_exports(target, small_exports(tmp_path / "export"))
    assert result.ignored_columns == {"pin": [""]}
    rows = contents(target)
    pin = rows["pin"][0]
    assert (pin["index"], pin["downloaded"], pin["description"]) == (7, 1, "")
    assert rows["geo"][0]["timestamp"] == datetime(2020, 8, 28, 3, 52, 47)
    assert rows["geo"][0]["latitude"] == -5.34445
    assert rows["user"][0]["date_joined"] == datetime(2016, 1, 2, 3, 4, 5)


def test_bad_values_name_the_file_record_and_column(tmp_path: Path) -> None:
    files = small_exports(tmp_path / "export", [[7, "Jane", "Doe", "thirty", "2016-01-02"]])
    with pytest.raises(ExportFormatError, match=r"user_data\.csv: record 2: column 'age'"):
        load_exports(connect(tmp_path / "a.db"), files)
    files = small_exports(tmp_path / "export", [["", "Jane", "Doe", 30, "2016-01-02"]])
    with pytest.raises(ExportFormatError, match="row id is required"):
        load_exports(connect(tmp_path / "b.db"), files)


def test_missing_columns_and_files_are_clear_errors(tmp_path: Path) -> None:
    files = small_exports(tmp_path / "export")
    write_csv(files["user"], ["ind", "first_name", "age"], [[7, "Jane", 30]])
    with pytest.raises(ExportFormatError, match=r"lacks columns \['last_name', 'date_joined'\]"):
        load_exports(connect(tmp_path / "a.db"), files)
    files["user"].unlink()
    with pytest.raises(ExportFormatError, match="no export of user_data"):
        find_exports(tmp_path / "export")
    good = {"ind": 1, "first_name": "A", "last_name": "B", "age": 20, "date_joined": "2016-01-01"}
    (tmp_path / "export" / "user_data.jsonl").write_text(json.dumps(good) + "\n{broken\n")
    (tmp_path / "export" / "user_data.json").write_text("[]")
    with pytest.raises(ExportFormatError, match="several exports of user_data"):
        find_exports(tmp_path / "export")
    (tmp_path / "export" / "user_data.json").unlink()
    with pytest.raises(ExportFormatError, match=r"user_data\.jsonl:2: broken JSON"):
        load_exports(connect(tmp_path / "b.db"), find_exports(tmp_path / "export"))


def test_parse_datetime_accepts_spec_variants() -> None:
    expected = datetime(2020, 8, 28, 3, 52, 47)
    assert parse_datetime("2020-08-28T03:52:47") == expected
    assert parse_datetime("2020-08-28 03:52:47") == expected
    assert parse_datetime("2020-08-28T03:52:47.250") == expected.replace(microsecond=250_000)
    assert parse_datetime("2020-08-28T03:52:47Z") == expected
    assert parse_datetime("2020-08-28T05:52:47+02:00") == expected
    assert parse_datetime(1598586767000) == expected  # pandas to_json: epoch milliseconds
    assert parse_datetime(1598586767) == expected
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_datetime("28/08/2020")


def test_refuses_to_mix_into_existing_data(generated: Engine, tmp_path: Path) -> None:
    engine = connect(tmp_path / "source.db")
    seed_database(engine, 10, seed=1, workers=0)
    with pytest.raises(database.SourceTablesNotEmptyError, match="--replace"):
        seed_database(engine, 10, seed=2, workers=0)
    assert seed_database(engine, 5, seed=2, workers=0, replace=True) == {
        "pin": 5, "geo": 5, "user": 5
    }  # fmt: skip


# -- the command -------------------------------------------------------------------------------


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_seed_command_generates_refuses_and_replaces(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    result = runner.invoke(cli(), ["seed", "--rows", "250", "--source-url", url, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "pinterest_data 250" in result.output
    again = runner.invoke(cli(), ["seed", "--rows", "10", "--source-url", url, "--no-progress"])
    assert again.exit_code == 1
    assert "--replace" in again.output
    replaced = runner.invoke(
        cli(), ["seed", "--rows", "10", "--source-url", url, "--replace", "--no-progress"]
    )
    assert replaced.exit_code == 0, replaced.output
    assert database.row_counts(database.connect(url)) == {"pin": 10, "geo": 10, "user": 10}


def test_seed_command_loads_exports(generated: Engine, tmp_path: Path) -> None:
    export_tables(generated, tmp_path / "export", "csv")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(
        cli(), ["seed", "--from", str(tmp_path / "export"), "--source-url", url, "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert contents(database.connect(url)) == contents(generated)
    # Bad exports are refused before the existing tables are dropped: nothing is lost.
    broken = tmp_path / "broken"
    broken.mkdir()
    result = CliRunner().invoke(
        cli(), ["seed", "--from", str(broken), "--source-url", url, "--replace", "--no-progress"]
    )
    assert result.exit_code == 1
    assert "no export of pinterest_data" in result.output
    small_exports(broken, [[7, "Jane", "Doe", "thirty", "2016-01-02"]])
    result = CliRunner().invoke(
        cli(), ["seed", "--from", str(broken), "--source-url", url, "--replace", "--no-progress"]
    )
    assert result.exit_code == 1
    assert "column 'age'" in result.output
    assert contents(database.connect(url)) == contents(generated)
