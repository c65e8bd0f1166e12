"""The default registry: one SQLite file in WAL mode, used from one worker thread.

The schema and the rules are :mod:`zsl.store.sql`'s; this module keeps the file, the thread
that owns its connection, the deadline of each call and what SQLite's errors mean.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from zsl.errors import StoreError, StoreUnavailableError
from zsl.records import ClassDefinition
from zsl.store.base import DEFAULT_STORE_TIMEOUT, timed_out
from zsl.store.sql import (
    CLASS_COLUMNS,
    SCHEMA_VERSION,
    ColumnTypes,
    Db,
    OffSchemaError,
    Rule,
    SQLStore,
    check_version,
    class_rows,
    finish,
    migrate,
    migrations,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

TYPES = ColumnTypes(
    big_integer="INTEGER",  # SQLite's integers hold 64 bits whatever they are called
    real="REAL",
    serial_key="INTEGER PRIMARY KEY",  # the rowid: numbered by SQLite
    keyed_table=" WITHOUT ROWID",
)
MIGRATIONS = migrations(TYPES)
"""The SQL of each schema version, oldest first (PRAGMA user_version counts the applied ones)."""

_UNAVAILABLE = (
    "The class registry cannot be {verb} right now ({reason}). Nothing was changed; please try "
    "again in a minute."
)
_DAMAGED = (
    "The class registry is not a usable class database any more (its file is damaged). The "
    "bot's operator must restore it from a backup or point ZSL_DATABASE_URL at a new file."
)


class SQLiteStore(SQLStore):
    """:class:`zsl.store.Store` on a SQLite file. Durable writes (WAL, ``synchronous=FULL``)."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        timeout: float = DEFAULT_STORE_TIMEOUT,
    ) -> None:
        self._db = connection
        self._executor = executor
        self._timeout = timeout
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        call_timeout: float = DEFAULT_STORE_TIMEOUT,
        busy_timeout: float | None = None,
        create: bool = True,
    ) -> SQLiteStore:
        """Open (creating and migrating if needed) the database at ``path``. With ``create``
        false, only an existing registry is opened: nothing is created.

        Opening, and every call of the store, gives up after ``call_timeout`` seconds with
        StoreUnavailableError (a stalled disk, a lock held elsewhere). ``busy_timeout``: how
        long SQLite itself waits for another connection's lock (default: ``call_timeout``).

        Raises:
            StoreError: the file cannot be opened, is not a database, or is from a newer version;
                or ``create`` is false and there is no registry at ``path``.
        """
        # One thread owns the connection: SQLite calls never run on the event loop, and never
        # two at once on one connection.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zsl-sqlite")
        loop = asyncio.get_running_loop()
        busy = call_timeout if busy_timeout is None else busy_timeout
        try:
            async with asyncio.timeout(call_timeout):
                if not create:
                    await loop.run_in_executor(executor, _require_registry, str(path))
                connection = await loop.run_in_executor(executor, _connect, str(path), busy)
        except TimeoutError as exc:
            executor.shutdown(wait=False, cancel_futures=True)
            raise timed_out("opened", call_timeout) from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(connection, executor, call_timeout)

    async def transact(self, verb: str, work: Rule[T], *, atomic: bool = True) -> T:
        if self._closed:
            raise StoreError("The class registry is closed. Restart the bot.")
        loop = asyncio.get_running_loop()
        abandoned = threading.Event()
        try:
            async with asyncio.timeout(self._timeout):
                return await loop.run_in_executor(
                    self._executor,
                    _in_transaction,
                    *(self._db, work, verb == "written", abandoned, atomic),
                )
        except TimeoutError as exc:
            # The worker thread is stuck in SQLite (a stalled disk, a lock held elsewhere):
            # answer now. A call still queued never runs; one under way commits nothing.
            abandoned.set()
            log.warning("sqlite %s abandoned after %gs", verb, self._timeout)
            raise timed_out(verb, self._timeout) from exc
        except (sqlite3.Error, OffSchemaError) as exc:
            log.warning("sqlite %s failed: %s", verb, exc)
            if isinstance(exc, OffSchemaError) or _is_damaged(exc):  # retrying cannot help
                raise StoreError(_DAMAGED) from exc
            raise StoreUnavailableError(
                _UNAVAILABLE.format(verb=verb, reason=_describe(exc))
            ) from exc

    async def bulk_insert_classes(self, rows: Iterable[tuple[int, ClassDefinition]]) -> None:
        table = class_rows(rows)

        async def insert(db: Db) -> None:
            assert isinstance(db, _SQLiteDb)  # executemany: one prepared statement for all rows
            db.connection.executemany(
                f"INSERT INTO classes ({', '.join(CLASS_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
                table,
            )

        await self.transact("written", insert)

    async def subscribe(
        self,
        on_change: Callable[[int], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        # A SQLite file belongs to one process; there is nobody else to hear from.
        return None

    async def integrity_check(self) -> list[str]:
        async def check(db: Db) -> list[str]:
            rows = [str(r[0]) for r in await db.fetch("PRAGMA integrity_check")]
            return [] if rows == ["ok"] else rows

        return await self.transact("read", check)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                await loop.run_in_executor(self._executor, self._db.close)
        except TimeoutError:
            # The worker is stuck in SQLite: leave it (and the connection) behind, not the caller.
            log.warning("closing the SQLite registry without its stuck worker thread")
            self._executor.shutdown(wait=False, cancel_futures=True)
            return
        self._executor.shutdown(wait=True)


def _require_registry(path: str) -> None:
    """Refuse ``path`` unless a registry was set up there; reads only, creates nothing."""
    missing = StoreError(
        f"There is no registry at {path}. Check the path, or run the bot once to create it."
    )
    if not Path(path).is_file():
        raise missing
    try:
        # mode=ro: reading the schema version must not create or change anything.
        db = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return  # not readable as a database: opening it says why
    if version == 0:  # an empty file, or another program's database
        raise missing


def _connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    if path != ":memory:":
        _create_private(path)
    try:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a write transaction
        # takes the write lock up front instead of failing half-way with SQLITE_BUSY.
        db = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    except (sqlite3.Error, ValueError) as exc:  # ValueError: a NUL character in the path
        reason = _describe(exc) if isinstance(exc, sqlite3.Error) else "not a usable file name"
        raise StoreError(f"Cannot open the database {path!r} ({reason}).") from exc
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")  # durable before the call returns
        db.execute("PRAGMA foreign_keys = ON")
        _migrate(db, path)
        # Guilds are read lazily, each meeting damage only on its own first use (and a row
        # whose guild id reads back NULL, never): check the whole file once instead, about
        # 5 ms per 1,000 guilds of 20 classes.
        problems = [str(row[0]) for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError(problems[0])
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        # UnicodeDecodeError: a garbled schema whose error message is not even valid text.
        db.close()
        reason = _describe(exc) if isinstance(exc, sqlite3.Error) else "the file is damaged"
        raise StoreError(
            f"The file {path} is not a usable class database ({reason}). Restore it "
            "from a backup or point ZSL_DATABASE_URL at a new file."
        ) from exc
    except BaseException:
        db.close()
        raise
    return db


def _create_private(path: str) -> None:
    """Create a new registry's missing folders (0700) and its empty file (0600).

    Members' texts (examples, votes) are no business of other local users; SQLite gives the
    -wal and -shm files the database file's mode. What exists already keeps the mode its
    operator chose.
    """
    file = Path(path)
    missing = [folder for folder in (file.parent, *file.parent.parents) if not folder.exists()]
    try:
        for folder in reversed(missing):
            folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"Cannot create the folder for the database {path} ({exc.strerror}). Set "
            "ZSL_DATABASE_URL to a writable place."
        ) from exc
    try:
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(
            f"Cannot create the database {path} ({exc.strerror}). Set ZSL_DATABASE_URL to a "
            "writable place."
        ) from exc


def _migrate(db: sqlite3.Connection, path: str) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    check_version(version, path)
    if version < SCHEMA_VERSION:  # an up-to-date file is only read: it may be read-only
        _in_transaction(db, lambda conn: migrate(conn, version, path), True, threading.Event())


def _in_transaction(
    db: sqlite3.Connection,
    work: Rule[T],
    write: bool,
    abandoned: threading.Event,
    atomic: bool = True,
) -> T:
    if not atomic:  # reads whose statements are each their own transaction (autocommit)
        return finish(work(_SQLiteDb(db)))
    # A reader must not ask for the write lock: reads keep working on a read-only file.
    db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = finish(work(_SQLiteDb(db)))
        if abandoned.is_set():  # its caller was told it failed (too slow): keep that true
            raise TimeoutError("abandoned by its caller")
        db.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (disk full, I/O error) may leave the transaction open; end it so the
        # next call starts clean and the refused write leaves nothing behind.
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


class _SQLiteDb:
    """:class:`zsl.store.sql.Db` on the connection, called in the thread that owns it: every
    call is made on the spot, so a transaction's work runs through :func:`finish`."""

    types = TYPES

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db

    async def fetch(self, sql: str, *args: object) -> Sequence[Sequence[Any]]:
        rows: list[Sequence[Any]] = self._db.execute(sql, args).fetchall()
        return rows

    async def execute(self, sql: str, *args: object) -> int:
        return self._db.execute(sql, args).rowcount

    def one_of(self, column: str, values: Sequence[int]) -> tuple[str, tuple[object, ...]]:
        # SQLite has no array parameters: an IN list (sqlite3 keeps each length's statement
        # prepared in its cache).
        return f"{column} IN ({', '.join('?' * len(values))})", tuple(values)

    async def lock_guild(self, guild_id: int) -> None:
        return None  # a write transaction began with BEGIN IMMEDIATE: it holds the only lock

    async def changed(self, guild_id: int) -> None:
        return None  # a SQLite file belongs to one process; there is nobody else to tell

    async def set_schema_version(self, version: int) -> None:
        self._db.execute(f"PRAGMA user_version = {int(version)}")


def _is_damaged(exc: sqlite3.Error) -> bool:
    message = str(exc).lower()
    return any(sign in message for sign in ("malformed", "not a database", "could not decode"))


def _describe(exc: sqlite3.Error) -> str:
    message = str(exc).lower()
    if "readonly" in message or "read-only" in message:
        return "the database file is read-only"
    if "full" in message:
        return "the disk is full"
    if "disk i/o" in message:
        return "the database file cannot be written"
    if "locked" in message or "busy" in message:
        return "the database is busy"
    if "not a database" in message or "malformed" in message:
        return "the file is damaged"
    return "a database error"
