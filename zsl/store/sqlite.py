"""The default registry: one SQLite file in WAL mode, used from one worker thread."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from zsl.errors import (
    ClassLimitError,
    ClassNotFoundError,
    DuplicateClassError,
    ExampleLimitError,
    InvalidClassError,
    StoreError,
    StoreUnavailableError,
)
from zsl.records import (
    ClassDefinition,
    GuildRecord,
    Vote,
    check_not_look_alike,
    has_broken_characters,
    name_key,
    strip_invisible,
)
from zsl.store.base import DEFAULT_STORE_TIMEOUT, timed_out

log = logging.getLogger(__name__)

T = TypeVar("T")

# Each entry moves the schema one version up; PRAGMA user_version counts the applied ones.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE classes (
        guild_id    INTEGER NOT NULL,
        name_key    TEXT    NOT NULL,
        name        TEXT    NOT NULL,
        description TEXT    NOT NULL DEFAULT '',
        position    INTEGER NOT NULL,
        updated_at  REAL    NOT NULL,
        PRIMARY KEY (guild_id, name_key)
    ) WITHOUT ROWID;
    CREATE TABLE guild_settings (
        guild_id  INTEGER PRIMARY KEY,
        threshold REAL
    );
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE examples (
        guild_id INTEGER NOT NULL,
        name_key TEXT    NOT NULL,
        position INTEGER NOT NULL,
        text     TEXT    NOT NULL,
        added_at REAL    NOT NULL,
        PRIMARY KEY (guild_id, name_key, position),
        FOREIGN KEY (guild_id, name_key) REFERENCES classes (guild_id, name_key)
            ON UPDATE CASCADE ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE TABLE votes (
        id         INTEGER PRIMARY KEY,
        guild_id   INTEGER NOT NULL,
        user_id    INTEGER NOT NULL,
        text       TEXT    NOT NULL,
        predicted  TEXT    NOT NULL,
        suggested  TEXT,
        created_at REAL    NOT NULL
    );
    CREATE INDEX votes_by_guild ON votes (guild_id, id);
    """,
    # One vote per member and result: the result a vote is about (NULL for older votes, and
    # NULLs never collide in a unique index).
    """
    ALTER TABLE votes ADD COLUMN result TEXT;
    CREATE UNIQUE INDEX votes_one_per_member ON votes (guild_id, user_id, result);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)

_UNAVAILABLE = (
    "The class registry cannot be {verb} right now ({reason}). Nothing was changed; please try "
    "again in a minute."
)
_DAMAGED = (
    "The class registry is not a usable class database any more (its file is damaged). The "
    "bot's operator must restore it from a backup or point ZSL_DATABASE_URL at a new file."
)


def check_storable(cls: ClassDefinition) -> None:
    """Refuse what no registry can hold faithfully, whatever validated it before.

    Raises:
        InvalidClassError: the name has no visible character (its key would be empty, or it
            shows blank), or the name or description holds NUL or broken (surrogate) characters.
    """
    if not cls.key or not name_key(strip_invisible(cls.name)):
        raise InvalidClassError(
            "A class name needs at least one visible letter, digit or symbol. Pick another name."
        )
    if has_broken_characters(cls.name) or has_broken_characters(cls.description):
        raise InvalidClassError(
            "The class contains broken or invisible control characters. Type it again."
        )


class SQLiteStore:
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

    async def _run(self, verb: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("The class registry is closed. Restart the bot.")
        loop = asyncio.get_running_loop()
        abandoned = threading.Event()
        try:
            async with asyncio.timeout(self._timeout):
                return await loop.run_in_executor(
                    self._executor, _in_transaction, self._db, fn, verb == "written", abandoned
                )
        except TimeoutError as exc:
            # The worker thread is stuck in SQLite (a stalled disk, a lock held elsewhere):
            # answer now. A call still queued never runs; one under way commits nothing.
            abandoned.set()
            log.warning("sqlite %s abandoned after %gs", verb, self._timeout)
            raise timed_out(verb, self._timeout) from exc
        except sqlite3.Error as exc:
            log.warning("sqlite %s failed: %s", verb, exc)
            if _is_damaged(exc):  # retrying cannot help
                raise StoreError(_DAMAGED) from exc
            raise StoreUnavailableError(
                _UNAVAILABLE.format(verb=verb, reason=_describe(exc))
            ) from exc

    async def load_all(self) -> dict[int, GuildRecord]:
        return await self._run("read", _load_all)

    async def load_guild(self, guild_id: int) -> GuildRecord:
        return await self._run("read", lambda db: _load_guild(db, guild_id))

    async def insert_class(self, guild_id: int, cls: ClassDefinition, max_classes: int) -> None:
        check_storable(cls)

        def insert(db: sqlite3.Connection) -> None:
            count, last = db.execute(
                "SELECT count(*), coalesce(max(position), -1) FROM classes WHERE guild_id = ?",
                (guild_id,),
            ).fetchone()
            if _exists(db, guild_id, cls.key):
                raise DuplicateClassError(cls.name)
            # Inside the write transaction: no other process can add a look-alike meanwhile.
            names = db.execute("SELECT name FROM classes WHERE guild_id = ?", (guild_id,))
            check_not_look_alike(cls.name, (row[0] for row in names))
            if count >= max_classes:
                raise ClassLimitError(max_classes)
            db.execute(
                "INSERT INTO classes (guild_id, name_key, name, description, position, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (guild_id, cls.key, cls.name, cls.description, last + 1, time.time()),
            )

        await self._run("written", insert)

    async def replace_class(self, guild_id: int, old_name: str, cls: ClassDefinition) -> None:
        check_storable(cls)

        def replace(db: sqlite3.Connection) -> None:
            old_key = name_key(old_name)
            if not _exists(db, guild_id, old_key):
                raise ClassNotFoundError(old_name)
            if cls.key != old_key and _exists(db, guild_id, cls.key):
                raise DuplicateClassError(cls.name)
            if cls.key != old_key:  # a look-alike of its own old name is fine
                others = db.execute(
                    "SELECT name FROM classes WHERE guild_id = ? AND name_key <> ?",
                    (guild_id, old_key),
                )
                check_not_look_alike(cls.name, (row[0] for row in others))
            db.execute(
                "UPDATE classes SET name_key = ?, name = ?, description = ?, updated_at = ?"
                " WHERE guild_id = ? AND name_key = ?",
                (cls.key, cls.name, cls.description, time.time(), guild_id, old_key),
            )

        await self._run("written", replace)

    async def delete_class(self, guild_id: int, name: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            gone = db.execute(
                "DELETE FROM classes WHERE guild_id = ? AND name_key = ?",
                (guild_id, name_key(name)),
            ).rowcount
            if not gone:
                raise ClassNotFoundError(name)

        await self._run("written", delete)

    async def add_example(
        self, guild_id: int, class_name: str, text: str, max_examples: int
    ) -> None:
        def add(db: sqlite3.Connection) -> None:
            key = name_key(class_name)
            if not _exists(db, guild_id, key):
                raise ClassNotFoundError(class_name)
            rows = db.execute(
                "SELECT text FROM examples WHERE guild_id = ? AND name_key = ?", (guild_id, key)
            ).fetchall()
            if any(row[0] == text for row in rows):
                return
            if len(rows) >= max_examples:
                raise ExampleLimitError(class_name, max_examples)
            db.execute(
                "INSERT INTO examples (guild_id, name_key, position, text, added_at) VALUES"
                " (?, ?, (SELECT coalesce(max(position), -1) + 1 FROM examples"
                "         WHERE guild_id = ? AND name_key = ?), ?, ?)",
                (guild_id, key, guild_id, key, text, time.time()),
            )

        await self._run("written", add)

    async def remove_example(self, guild_id: int, class_name: str, text: str) -> None:
        def remove(db: sqlite3.Connection) -> None:
            key = name_key(class_name)
            if not _exists(db, guild_id, key):
                raise ClassNotFoundError(class_name)
            db.execute(
                "DELETE FROM examples WHERE guild_id = ? AND name_key = ? AND text = ?",
                (guild_id, key, text),
            )

        await self._run("written", remove)

    async def add_vote(self, guild_id: int, vote: Vote, max_votes: int) -> None:
        def add(db: sqlite3.Connection) -> None:
            # A member's later vote on the same result replaces theirs, keeping its number.
            db.execute(
                "INSERT INTO votes"
                " (guild_id, user_id, text, predicted, suggested, created_at, result)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, user_id, result) DO UPDATE SET"
                " text = excluded.text, predicted = excluded.predicted,"
                " suggested = excluded.suggested, created_at = excluded.created_at",
                (
                    guild_id,
                    vote.user_id,
                    vote.text,
                    vote.predicted,
                    vote.suggested,
                    time.time(),
                    vote.result,
                ),
            )
            db.execute(
                "DELETE FROM votes WHERE guild_id = ? AND id NOT IN"
                " (SELECT id FROM votes WHERE guild_id = ? ORDER BY id DESC LIMIT ?)",
                (guild_id, guild_id, max_votes),
            )

        await self._run("written", add)

    async def list_votes(self, guild_id: int, limit: int) -> list[Vote]:
        def list_(db: sqlite3.Connection) -> list[Vote]:
            rows = db.execute(
                "SELECT id, user_id, text, predicted, suggested, created_at, result FROM votes"
                " WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
                (guild_id, limit),
            )
            optional = (str, type(None))
            return [
                Vote(user_id, text, predicted, suggested, vote_id, created_at, result)
                for vote_id, user_id, text, predicted, suggested, created_at, result in _as_stored(
                    rows, int, int, str, str, optional, _NUMBER, optional
                )
            ]

        return await self._run("read", list_)

    async def delete_vote(self, guild_id: int, vote_id: int) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            return bool(
                db.execute(
                    "DELETE FROM votes WHERE guild_id = ? AND id = ?", (guild_id, vote_id)
                ).rowcount
            )

        return await self._run("written", delete)

    async def set_threshold(self, guild_id: int, threshold: float | None) -> None:
        await self._run(
            "written",
            lambda db: db.execute(
                "INSERT INTO guild_settings (guild_id, threshold) VALUES (?, ?)"
                " ON CONFLICT (guild_id) DO UPDATE SET threshold = excluded.threshold",
                (guild_id, threshold),
            ),
        )

    async def get_meta(self, key: str) -> str | None:
        def get(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return await self._run("read", get)

    async def set_meta(self, key: str, value: str) -> None:
        await self._run(
            "written",
            lambda db: db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            ),
        )

    async def subscribe(
        self,
        on_change: Callable[[int], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        # A SQLite file belongs to one process; there is nobody else to hear from.
        return None

    async def integrity_check(self) -> list[str]:
        def check(db: sqlite3.Connection) -> list[str]:
            rows = [str(r[0]) for r in db.execute("PRAGMA integrity_check").fetchall()]
            return [] if rows == ["ok"] else rows

        return await self._run("read", check)

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
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"The database {path} was written by a newer version of zsl (schema {version}, this"
            f" one knows {SCHEMA_VERSION}). Upgrade zsl."
        )
    for number in range(version, SCHEMA_VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _MIGRATIONS[number].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        log.info("migrated %s to schema %d", path, number + 1)


def _in_transaction(
    db: sqlite3.Connection,
    fn: Callable[[sqlite3.Connection], T],
    write: bool,
    abandoned: threading.Event,
) -> T:
    # A reader must not ask for the write lock: reads keep working on a read-only file.
    db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = fn(db)
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


def _exists(db: sqlite3.Connection, guild_id: int, key: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM classes WHERE guild_id = ? AND name_key = ?", (guild_id, key)
    ).fetchone()
    return row is not None


def _load_all(db: sqlite3.Connection) -> dict[int, GuildRecord]:
    return _load(db, "", ())


def _load_guild(db: sqlite3.Connection, guild_id: int) -> GuildRecord:
    return _load(db, "WHERE guild_id = ?", (guild_id,)).get(guild_id, GuildRecord())


def _load(db: sqlite3.Connection, where: str, args: tuple[int, ...]) -> dict[int, GuildRecord]:
    examples: dict[tuple[int, str], list[str]] = {}
    for guild_id, key, text in _as_stored(
        db.execute(
            f"SELECT guild_id, name_key, text FROM examples {where} ORDER BY position", args
        ),
        int,
        str,
        str,
    ):
        examples.setdefault((int(guild_id), key), []).append(text)
    classes: dict[int, list[ClassDefinition]] = {}
    for guild_id, key, name, description in _as_stored(
        db.execute(
            f"SELECT guild_id, name_key, name, description FROM classes {where}"
            " ORDER BY guild_id, position",
            args,
        ),
        int,
        str,
        str,
        str,
    ):
        found = tuple(examples.get((int(guild_id), key), ()))
        classes.setdefault(int(guild_id), []).append(ClassDefinition(name, description, found))
    thresholds = {
        int(g): t
        for g, t in _as_stored(
            db.execute(f"SELECT guild_id, threshold FROM guild_settings {where}", args),
            int,
            (*_NUMBER, type(None)),
        )
    }
    return {
        guild_id: GuildRecord(tuple(classes.get(guild_id, ())), thresholds.get(guild_id))
        for guild_id in sorted(classes.keys() | thresholds.keys())
    }


_NUMBER = (int, float)


def _as_stored(
    rows: Iterable[tuple[Any, ...]], *kinds: type | tuple[type, ...]
) -> Iterator[tuple[Any, ...]]:
    """``rows``, each checked against the types the schema promises.

    Garbled pages can read back as NULLs or values of the wrong type while SQLite itself sees
    nothing wrong; that is a damaged file too, not a reason to crash on it later.
    """
    for row in rows:
        if not all(isinstance(value, kind) for value, kind in zip(row, kinds, strict=True)):
            raise sqlite3.DatabaseError("database disk image is malformed (a value off the schema)")
        yield row


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
