"""Fill the source database: with generated rows, or from CSV/JSON exports of the original tables.

Both paths stream: at most a few batches are in memory at once, so tens of millions of rows fit
in a bounded footprint. Generation runs in worker processes (rows are a pure function of
`(seed, id)`) while this process inserts, in id order.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Double, Engine, Integer

from pipeline.source import database
from pipeline.source.database import COLUMNS, TABLES, Row
from pipeline.source.generator import DirtyRates, SourceRows, generate_batch

ProgressCallback = Callable[[int], None]
SMALL_RUN_ROWS = 50_000

EXPORT_SUFFIXES: tuple[str, ...] = (".csv", ".json", ".jsonl", ".ndjson")
# Columns some exports name differently (pandas `to_sql` writes `index`, some dumps `ind`).
_ALIASES: dict[str, dict[str, str]] = {"pin": {"ind": "index"}, "geo": {}, "user": {}}


def default_workers() -> int:
    """Generator processes: one per core, up to 4. Inserting takes a quarter of the time that
    generating does, so the inserting process shares a core rather than keeping one idle."""
    return max(1, min(4, os.cpu_count() or 1))


def seed_database(
    engine: Engine,
    rows: int,
    *,
    seed: int,
    rates: DirtyRates | None = None,
    batch_size: int = 5_000,
    workers: int | None = None,
    replace: bool = False,
    on_progress: ProgressCallback | None = None,
) -> dict[str, int]:
    """Generate `rows` ids (0 .. rows-1) into the three tables; returns rows per table.

    `workers=0` generates in this process (simplest, slower); by default (None) worker processes
    generate while this one inserts, except for small runs. The data is identical either way.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rates = rates or DirtyRates()
    if workers is None:
        # Starting worker processes costs about a second: not worth it for small runs.
        workers = 0 if rows < SMALL_RUN_ROWS else default_workers()
    database.prepare_tables(engine, replace=replace)
    for batch in _generated_batches(rows, seed, rates, batch_size, workers):
        database.insert_rows(engine, batch.as_tables())
        if on_progress is not None:
            on_progress(len(batch.pin))
    return database.row_counts(engine)


def _generated_batches(
    rows: int, seed: int, rates: DirtyRates, batch_size: int, workers: int
) -> Iterator[SourceRows]:
    ranges = [(start, min(start + batch_size, rows)) for start in range(0, rows, batch_size)]
    if workers <= 0:
        for start, stop in ranges:
            yield generate_batch(seed, start, stop, rates)
        return
    # `spawn` avoids forking a process that may already run threads (progress bar, SQLAlchemy).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: deque[Future[SourceRows]] = deque()
        next_range = iter(ranges)
        # Keep two batches per worker in flight: enough to stay busy, bounded memory.
        for start, stop in next_range:
            pending.append(pool.submit(generate_batch, seed, start, stop, rates))
            if len(pending) >= 2 * workers:
                break
        while pending:
            batch = pending.popleft().result()
            following = next(next_range, None)
            if following is not None:
                pending.append(pool.submit(generate_batch, seed, *following, rates))
            yield batch


class ExportFormatError(ValueError):
    """An export file that cannot be loaded; the message names the file, record and column."""


@dataclass
class LoadResult:
    rows: dict[str, int] = field(default_factory=dict)
    ignored_columns: dict[str, list[str]] = field(default_factory=dict)


def find_exports(directory: Path) -> dict[str, Path]:
    """`pinterest_data.csv|json|jsonl|ndjson` etc. in `directory`, one file per table."""
    found: dict[str, Path] = {}
    for name, table in TABLES.items():
        candidates = [directory / f"{table.name}{suffix}" for suffix in EXPORT_SUFFIXES]
        existing = [path for path in candidates if path.is_file()]
        if not existing:
            raise ExportFormatError(
                f"no export of {table.name} in {directory}: expected one of "
                + ", ".join(path.name for path in candidates)
            )
        if len(existing) > 1:
            raise ExportFormatError(
                f"several exports of {table.name} in {directory}: "
                + ", ".join(path.name for path in existing)
            )
        found[name] = existing[0]
    return found


def check_exports(files: dict[str, Path]) -> None:
    """Fail early, before the database is touched: every table has a file whose columns and
    first record are usable."""
    missing = set(TABLES) - set(files)
    if missing:
        raise ExportFormatError(f"missing export files for tables: {sorted(missing)}")
    for name, path in files.items():
        for number, record in _read_records(path):
            _RowConverter(name, path).convert(record, number)
            break


def load_exports(
    engine: Engine,
    files: dict[str, Path],
    *,
    batch_size: int = 5_000,
    replace: bool = False,
    on_progress: ProgressCallback | None = None,
) -> LoadResult:
    """Load one export file per table (keys `pin`, `geo`, `user`) into the source database."""
    check_exports(files)
    database.prepare_tables(engine, replace=replace)
    result = LoadResult()
    for name, path in files.items():
        converter = _RowConverter(name, path)
        batch: list[Row] = []
        for number, record in _read_records(path):
            try:
                row = converter.convert(record, number)
            except ExportFormatError as error:
                raise ExportFormatError(
                    f"{error} (rows before it are loaded; fix the file and rerun with --replace)"
                ) from error
            batch.append(row)
            if len(batch) >= batch_size:
                database.insert_rows(engine, {name: batch})
                if on_progress is not None:
                    on_progress(len(batch))
                batch = []
        if batch:
            database.insert_rows(engine, {name: batch})
            if on_progress is not None:
                on_progress(len(batch))
        if converter.ignored:
            result.ignored_columns[name] = sorted(converter.ignored)
    result.rows = database.row_counts(engine)
    return result


def _read_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(record number, record) pairs; CSV and JSON lines stream, a JSON array is read whole."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in (".jsonl", ".ndjson"):
        return _read_json_lines(path)
    if suffix == ".json":
        return _read_json(path)
    raise ExportFormatError(f"{path}: unsupported export format {suffix!r}")


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for record in reader:
            # Line numbers count the header as line 1, as editors show them.
            yield reader.line_num, record


def _read_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ExportFormatError(f"{path}:{number}: broken JSON: {error}") from error
            if not isinstance(record, dict):
                raise ExportFormatError(f"{path}:{number}: expected a JSON object per line")
            yield number, record


def _read_json(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise ExportFormatError(f"{path}: broken JSON: {error}") from error
    records = _records_of(document)
    if records is None:
        raise ExportFormatError(
            f"{path}: expected a JSON array of row objects (or a phpMyAdmin export holding one)"
        )
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ExportFormatError(f"{path}: record {number} is not a JSON object")
        yield number, record


def _records_of(document: Any) -> list[Any] | None:
    if not isinstance(document, list):
        return None
    # phpMyAdmin wraps rows: [{"type": "header"}, {"type": "table", "name": ..., "data": [...]}].
    tables = [item for item in document if isinstance(item, dict) and item.get("type") == "table"]
    if tables:
        data = tables[0].get("data")
        return data if isinstance(data, list) else None
    return document


class _RowConverter:
    """Turns an export record into a typed row tuple in contract column order."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.columns = COLUMNS[name]
        self.types = {column.name: column.type for column in TABLES[name].columns}
        self.ignored: set[str] = set()
        self._checked = False

    def convert(self, record: dict[str, Any], number: int) -> Row:
        record = {_ALIASES[self.name].get(key, key): value for key, value in record.items()}
        if not self._checked:
            missing = [column for column in self.columns if column not in record]
            if missing:
                raise ExportFormatError(
                    f"{self.path}: {TABLES[self.name].name} export lacks columns {missing}; "
                    f"it has {sorted(record)}"
                )
            self._checked = True
        self.ignored.update(key for key in record if key not in self.types)
        values: list[Any] = []
        for column in self.columns:
            try:
                values.append(_typed(record.get(column), self.types[column], column))
            except (TypeError, ValueError) as error:
                raise ExportFormatError(
                    f"{self.path}: record {number}: column {column!r}: {error}"
                ) from error
        return tuple(values)


def _typed(value: Any, column_type: Any, column: str) -> Any:
    is_id = column in ("index", "ind")
    if isinstance(column_type, (BigInteger, Integer)):
        if value is None or value == "":
            if is_id:
                raise ValueError("a row id is required")
            return None
        return _as_int(value)
    if isinstance(column_type, Double):
        return None if value is None or value == "" else float(value)
    if isinstance(column_type, DateTime):
        return None if value is None or value == "" else parse_datetime(value)
    return None if value is None else str(value)


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    number = float(value)  # pandas writes integer columns holding NaN as `12.0`
    if not number.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(number)


def parse_datetime(value: Any) -> datetime:
    """ISO 8601 text (`T` or space, fractional seconds, `Z` or offset → UTC) or epoch numbers.

    Numbers above 1e11 are taken as epoch milliseconds (pandas `to_json`), smaller ones as
    seconds. The result is a naive UTC datetime, as the source tables store it.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a datetime, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = value / 1000 if abs(value) > 1e11 else value
        return datetime.fromtimestamp(seconds, tz=UTC).replace(tzinfo=None)
    text = str(value).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(f"expected an ISO 8601 datetime, got {value!r}") from error
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def export_tables(engine: Engine, directory: Path, fmt: str = "csv") -> dict[str, Path]:
    """Write each source table to `directory/<table>.<fmt>` (`csv` or `jsonl`), streaming.

    Datetimes are written as ISO 8601 text. Used to hand data to other tools and to test the
    loader with a round trip.
    """
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"fmt must be 'csv' or 'jsonl', got {fmt!r}")
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, table in TABLES.items():
        path = directory / f"{table.name}.{fmt}"
        rows = database.iter_table(engine, name)
        with path.open("w", newline="", encoding="utf-8") as handle:
            if fmt == "csv":
                writer = csv.writer(handle)
                writer.writerow(COLUMNS[name])
                writer.writerows(_plain_values(row) for row in rows)
            else:
                for row in rows:
                    handle.write(
                        json.dumps(dict(zip(COLUMNS[name], _plain_values(row), strict=True)))
                    )
                    handle.write("\n")
        written[name] = path
    return written


def _plain_values(row: dict[str, Any]) -> list[Any]:
    return [value.isoformat() if isinstance(value, datetime) else value for value in row.values()]
