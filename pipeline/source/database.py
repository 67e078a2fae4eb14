"""The three source tables of data contract §1 and the SQL around them.

Any SQLAlchemy URL works: a SQLite file by default (embedded, no server), `mysql+pymysql://...`
(the cloud original is RDS MySQL) or `postgresql+psycopg://...`. Column names and order follow
data contract §1 exactly; `index` is a reserved word in SQL, which SQLAlchemy quotes in every
dialect.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Double,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import make_url

metadata = MetaData()

pinterest_data = Table(
    "pinterest_data",
    metadata,
    Column("index", BigInteger, primary_key=True, autoincrement=False),
    Column("unique_id", Text),
    Column("title", Text),
    Column("description", Text),
    Column("poster_name", Text),
    Column("follower_count", Text),
    Column("tag_list", Text),
    Column("is_image_or_video", Text),
    Column("image_src", Text),
    Column("downloaded", Integer),
    Column("save_location", Text),
    Column("category", Text),
)

geolocation_data = Table(
    "geolocation_data",
    metadata,
    Column("ind", BigInteger, primary_key=True, autoincrement=False),
    Column("timestamp", DateTime),
    Column("latitude", Double),
    Column("longitude", Double),
    Column("country", Text),
)

user_data = Table(
    "user_data",
    metadata,
    Column("ind", BigInteger, primary_key=True, autoincrement=False),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("age", Integer),
    Column("date_joined", DateTime),
)

# Short names used everywhere else in the pipeline (settings.topics, settings.streams).
TABLES: dict[str, Table] = {"pin": pinterest_data, "geo": geolocation_data, "user": user_data}
ID_COLUMN: dict[str, str] = {"pin": "index", "geo": "ind", "user": "ind"}
COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(column.name for column in table.columns) for name, table in TABLES.items()
}

Row = tuple[Any, ...]


class SourceTablesNotEmptyError(RuntimeError):
    """Raised instead of silently mixing new rows into an existing source database."""


def connect(url: str) -> Engine:
    """An engine for `url`; for a SQLite file the parent folder is created first."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True)


def safe_url(url: str) -> str:
    """`url` with any password masked, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the emulator read while a seed writes; NORMAL sync is safe with WAL.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table; tables that do not exist count 0."""
    existing = set(inspect(engine).get_table_names())
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for name, table in TABLES.items():
            if table.name in existing:
                counts[name] = int(
                    conn.execute(select(func.count()).select_from(table)).scalar_one()
                )
            else:
                counts[name] = 0
    return counts


def prepare_tables(engine: Engine, *, replace: bool) -> None:
    """Create the three tables; with `replace`, drop them first. Refuses to append to data."""
    if replace:
        metadata.drop_all(engine)
    else:
        counts = row_counts(engine)
        if any(counts.values()):
            raise SourceTablesNotEmptyError(
                f"the source database already holds rows {counts}; pass --replace to drop "
                "and recreate the tables"
            )
    metadata.create_all(engine)


def insert_rows(engine: Engine, rows: Mapping[str, Sequence[Row]]) -> None:
    """Insert one batch of rows per table in a single transaction (executemany)."""
    dialect = engine.dialect
    with engine.begin() as conn:
        for name, batch in rows.items():
            if not batch:
                continue
            if dialect.name == "sqlite":
                # Straight to the driver: SQLAlchemy's per-row parameter processing costs about
                # three times the insert itself, which matters at tens of millions of rows.
                conn.exec_driver_sql(_sqlite_insert_sql(engine, name), _sqlite_values(batch))
            elif dialect.name == "postgresql" and dialect.driver == "psycopg":
                # psycopg's executemany sends one INSERT per row; COPY is several times faster.
                _copy_rows(conn, name, batch)
            else:
                columns = COLUMNS[name]
                conn.execute(
                    TABLES[name].insert(), [dict(zip(columns, row, strict=True)) for row in batch]
                )


def _copy_rows(conn: Connection, name: str, batch: Sequence[Row]) -> None:
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(column) for column in COLUMNS[name])
    statement = f"COPY {quote(TABLES[name].name)} ({columns}) FROM STDIN"
    raw: Any = conn.connection.dbapi_connection  # a psycopg Connection, in this transaction
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in batch:
            copy.write_row(row)


def _sqlite_insert_sql(engine: Engine, name: str) -> str:
    quote = engine.dialect.identifier_preparer.quote
    columns = ", ".join(quote(column) for column in COLUMNS[name])
    marks = ", ".join("?" for _ in COLUMNS[name])
    return f"INSERT INTO {quote(TABLES[name].name)} ({columns}) VALUES ({marks})"


def _sqlite_values(batch: Sequence[Row]) -> list[Row]:
    # SQLAlchemy stores SQLite DATETIME as `YYYY-MM-DD HH:MM:SS.ffffff` text; write the same.
    return [
        tuple(
            value.isoformat(" ", "microseconds") if isinstance(value, datetime) else value
            for value in row
        )
        for row in batch
    ]


def fetch_rows(engine: Engine, name: str, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Rows of table `name` whose id is in `ids`, keyed by id, columns in contract order."""
    table = TABLES[name]
    id_column = table.c[ID_COLUMN[name]]
    wanted = sorted(set(ids))
    found: dict[int, dict[str, Any]] = {}
    with engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for mapping in conn.execute(select(table).where(id_column.in_(chunk))).mappings():
                row = dict(mapping)
                found[int(row[ID_COLUMN[name]])] = row
    return found


def id_range(engine: Engine) -> tuple[int, int] | None:
    """Smallest and largest pin id, or None when the source holds no pins."""
    id_column = pinterest_data.c["index"]
    with engine.connect() as conn:
        low, high = conn.execute(select(func.min(id_column), func.max(id_column))).one()
    if low is None or high is None:
        return None
    return int(low), int(high)


def iter_table(engine: Engine, name: str, batch_size: int = 10_000) -> Iterator[dict[str, Any]]:
    """Every row of table `name` in id order, read in keyset pages (bounded memory)."""
    table = TABLES[name]
    id_column = table.c[ID_COLUMN[name]]
    last: int | None = None
    while True:
        query = select(table).order_by(id_column).limit(batch_size)
        if last is not None:
            query = query.where(id_column > last)
        with engine.connect() as conn:
            page = [dict(mapping) for mapping in conn.execute(query).mappings()]
        if not page:
            return
        yield from page
        last = int(page[-1][ID_COLUMN[name]])
