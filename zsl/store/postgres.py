"""The shared registry: PostgreSQL through asyncpg, for several bot processes at once.

Same schema and rules as the SQLite store. Each write runs in one transaction that also
sends ``NOTIFY zsl_guild_changed, '<guild_id> <origin>'``; other processes listen and reload just
that guild (see :meth:`PostgresStore._listen`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from zsl.errors import (
    ClassLimitError,
    ClassNotFoundError,
    DuplicateClassError,
    ExampleLimitError,
    StoreError,
    StoreUnavailableError,
)
from zsl.records import ClassDefinition, GuildRecord, Vote, check_not_look_alike, name_key
from zsl.store import redact_url
from zsl.store.base import DEFAULT_STORE_TIMEOUT, timed_out
from zsl.store.sqlite import check_storable

log = logging.getLogger(__name__)

T = TypeVar("T")

CHANNEL = "zsl_guild_changed"

# Each entry moves the schema one version up; zsl_schema.version counts the applied ones.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE classes (
        guild_id    BIGINT           NOT NULL,
        name_key    TEXT             NOT NULL,
        name        TEXT             NOT NULL,
        description TEXT             NOT NULL DEFAULT '',
        position    INTEGER          NOT NULL,
        updated_at  DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (guild_id, name_key)
    );
    CREATE TABLE guild_settings (
        guild_id  BIGINT PRIMARY KEY,
        threshold DOUBLE PRECISION
    );
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE examples (
        guild_id BIGINT           NOT NULL,
        name_key TEXT             NOT NULL,
        position INTEGER          NOT NULL,
        text     TEXT             NOT NULL,
        added_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (guild_id, name_key, position),
        FOREIGN KEY (guild_id, name_key) REFERENCES classes (guild_id, name_key)
            ON UPDATE CASCADE ON DELETE CASCADE
    );
    CREATE TABLE votes (
        id         BIGSERIAL PRIMARY KEY,
        guild_id   BIGINT           NOT NULL,
        user_id    BIGINT           NOT NULL,
        text       TEXT             NOT NULL,
        predicted  TEXT             NOT NULL,
        suggested  TEXT,
        created_at DOUBLE PRECISION NOT NULL
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
_MIGRATION_LOCK = 0x7A736C  # pg_advisory_xact_lock key: one migrating process at a time

_REFUSED = (
    "The class registry refused the request (a database error). Nothing was changed; please try "
    "again, and tell the bot's operator if it keeps happening."
)
_UNAVAILABLE = (
    "The class registry cannot be {verb} right now (the database is unreachable). Nothing was "
    "changed; please try again in a minute."
)


def _connection_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (
        OSError,
        asyncio.TimeoutError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError,
        asyncpg.ReadOnlySQLTransactionError,
        asyncpg.DiskFullError,
    )


class PostgresStore:
    """:class:`zsl.store.Store` on PostgreSQL. Every write is committed before it returns."""

    def __init__(self, pool: Any, dsn: str, timeout: float = DEFAULT_STORE_TIMEOUT) -> None:
        self._pool = pool
        self._dsn = dsn
        self._timeout = timeout
        self._listener: Any = None
        self._closed = False
        # Names this store's writes in their notifications, so that it skips its own. Backend
        # pids cannot do that: after a server restart in a new PID namespace another process's
        # connection may get a pid this store once wrote through.
        self._origin = uuid.uuid4().hex

    @classmethod
    async def open(cls, dsn: str, *, call_timeout: float = DEFAULT_STORE_TIMEOUT) -> PostgresStore:
        """Connect (a small pool) and migrate the schema.

        Opening, and every call of the store, gives up after ``call_timeout`` seconds with
        StoreUnavailableError, whatever stalls (connecting, a pool connection, any statement).

        Raises:
            StoreError: the server is unreachable, refuses us, or has a newer schema.
        """
        try:
            import asyncpg
        except ImportError as exc:
            raise StoreError(
                "PostgreSQL needs the asyncpg package. Install it with 'pip install asyncpg'."
            ) from exc
        try:
            # timeout: for each connection the pool opens (connect, authenticate), now or later.
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, timeout=call_timeout)
        except Exception as exc:  # any failure to connect, e.g. OverflowError for a port 99999
            detail = redact_url(str(exc).splitlines()[0].rstrip(".")) if str(exc) else ""
            raise StoreError(
                f"Cannot connect to PostgreSQL at {redact_url(dsn)} ({type(exc).__name__}"
                f"{': ' + detail if detail else ''}). Check ZSL_DATABASE_URL and that the server is"
                " running."
            ) from exc
        store = cls(pool, dsn, call_timeout)
        try:
            await store._run("opened", _migrate)
        except BaseException:
            pool.terminate()  # not close(): that would wait on a server that may not answer
            raise
        return store

    async def _run(self, verb: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        import asyncpg

        if self._closed:
            raise StoreError("The class registry is closed. Restart the bot.")
        held: list[Any] = []  # the connection, once the pool has given one
        attempt = asyncio.ensure_future(self._attempt(fn, held))
        try:
            await asyncio.wait({attempt}, timeout=self._timeout)
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        try:
            if not attempt.done():
                # Stalled: cut the connection, so that its transaction dies with it (the server
                # rolls it back) and no rollback or release waits on a server that is silent.
                for db in held:
                    db.terminate()
                attempt.cancel()
                attempt.add_done_callback(_forget)
                log.warning("postgres %s abandoned after %gs", verb, self._timeout)
                raise timed_out(verb, self._timeout)
            return attempt.result()
        except _connection_errors() as exc:
            log.warning("postgres %s failed: %r", verb, exc)
            raise StoreUnavailableError(_UNAVAILABLE.format(verb=verb)) from exc
        except (asyncpg.PostgresError, UnicodeError) as exc:
            # Anything else the server (or the encoding) refuses: the transaction was rolled
            # back, so nothing changed; the operator finds the detail in the log.
            log.error("postgres %s refused: %r", verb, exc)
            raise StoreError(_REFUSED) from exc

    async def _attempt(self, fn: Callable[[Any], Awaitable[T]], held: list[Any]) -> T:
        async with self._pool.acquire() as db:
            held.append(db)
            async with db.transaction():
                return await fn(db)

    async def _notify(self, db: Any, guild_id: int) -> None:
        """Tell the other processes, as part of the write's transaction, that a guild changed;
        the payload names this store so that it can skip its own writes."""
        await db.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{guild_id} {self._origin}")

    async def load_all(self) -> dict[int, GuildRecord]:
        return await self._run("read", lambda db: _load(db, None))

    async def load_guild(self, guild_id: int) -> GuildRecord:
        async def load(db: Any) -> GuildRecord:
            return (await _load(db, guild_id)).get(guild_id, GuildRecord())

        return await self._run("read", load)

    async def insert_class(self, guild_id: int, cls: ClassDefinition, max_classes: int) -> None:
        check_storable(cls)

        async def insert(db: Any) -> None:
            await _lock_guild(db, guild_id)
            count, last = await db.fetchrow(
                "SELECT count(*), coalesce(max(position), -1) FROM classes WHERE guild_id = $1",
                guild_id,
            )
            if await _exists(db, guild_id, cls.key):
                raise DuplicateClassError(cls.name)
            # Under the guild's lock: no other process can add a look-alike meanwhile.
            names = await db.fetch("SELECT name FROM classes WHERE guild_id = $1", guild_id)
            check_not_look_alike(cls.name, (row[0] for row in names))
            if count >= max_classes:
                raise ClassLimitError(max_classes)
            await db.execute(
                "INSERT INTO classes (guild_id, name_key, name, description, position, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                guild_id,
                cls.key,
                cls.name,
                cls.description,
                last + 1,
                time.time(),
            )
            await self._notify(db, guild_id)

        await self._run("written", insert)

    async def replace_class(self, guild_id: int, old_name: str, cls: ClassDefinition) -> None:
        check_storable(cls)

        async def replace(db: Any) -> None:
            await _lock_guild(db, guild_id)
            old_key = name_key(old_name)
            if not await _exists(db, guild_id, old_key):
                raise ClassNotFoundError(old_name)
            if cls.key != old_key and await _exists(db, guild_id, cls.key):
                raise DuplicateClassError(cls.name)
            if cls.key != old_key:  # a look-alike of its own old name is fine
                others = await db.fetch(
                    "SELECT name FROM classes WHERE guild_id = $1 AND name_key <> $2",
                    guild_id,
                    old_key,
                )
                check_not_look_alike(cls.name, (row[0] for row in others))
            await db.execute(
                "UPDATE classes SET name_key = $1, name = $2, description = $3, updated_at = $4"
                " WHERE guild_id = $5 AND name_key = $6",
                cls.key,
                cls.name,
                cls.description,
                time.time(),
                guild_id,
                old_key,
            )
            await self._notify(db, guild_id)

        await self._run("written", replace)

    async def delete_class(self, guild_id: int, name: str) -> None:
        async def delete(db: Any) -> None:
            status = await db.execute(
                "DELETE FROM classes WHERE guild_id = $1 AND name_key = $2",
                guild_id,
                name_key(name),
            )
            if status == "DELETE 0":
                raise ClassNotFoundError(name)
            await self._notify(db, guild_id)

        await self._run("written", delete)

    async def add_example(
        self, guild_id: int, class_name: str, text: str, max_examples: int
    ) -> None:
        async def add(db: Any) -> None:
            await _lock_guild(db, guild_id)
            key = name_key(class_name)
            if not await _exists(db, guild_id, key):
                raise ClassNotFoundError(class_name)
            texts = [
                r[0]
                for r in await db.fetch(
                    "SELECT text FROM examples WHERE guild_id = $1 AND name_key = $2",
                    guild_id,
                    key,
                )
            ]
            if text in texts:
                return
            if len(texts) >= max_examples:
                raise ExampleLimitError(class_name, max_examples)
            await db.execute(
                "INSERT INTO examples (guild_id, name_key, position, text, added_at) VALUES"
                " ($1, $2, (SELECT coalesce(max(position), -1) + 1 FROM examples"
                "           WHERE guild_id = $1 AND name_key = $2), $3, $4)",
                guild_id,
                key,
                text,
                time.time(),
            )
            await self._notify(db, guild_id)

        await self._run("written", add)

    async def remove_example(self, guild_id: int, class_name: str, text: str) -> None:
        async def remove(db: Any) -> None:
            key = name_key(class_name)
            if not await _exists(db, guild_id, key):
                raise ClassNotFoundError(class_name)
            await db.execute(
                "DELETE FROM examples WHERE guild_id = $1 AND name_key = $2 AND text = $3",
                guild_id,
                key,
                text,
            )
            await self._notify(db, guild_id)

        await self._run("written", remove)

    async def add_vote(self, guild_id: int, vote: Vote, max_votes: int) -> None:
        async def add(db: Any) -> None:
            # A member's later vote on the same result replaces theirs, keeping its number.
            await db.execute(
                "INSERT INTO votes"
                " (guild_id, user_id, text, predicted, suggested, created_at, result)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (guild_id, user_id, result) DO UPDATE SET"
                " text = excluded.text, predicted = excluded.predicted,"
                " suggested = excluded.suggested, created_at = excluded.created_at",
                guild_id,
                vote.user_id,
                vote.text,
                vote.predicted,
                vote.suggested,
                time.time(),
                vote.result,
            )
            await db.execute(
                "DELETE FROM votes WHERE guild_id = $1 AND id NOT IN"
                " (SELECT id FROM votes WHERE guild_id = $1 ORDER BY id DESC LIMIT $2)",
                guild_id,
                max_votes,
            )

        await self._run("written", add)

    async def list_votes(self, guild_id: int, limit: int) -> list[Vote]:
        async def list_(db: Any) -> list[Vote]:
            rows = await db.fetch(
                "SELECT id, user_id, text, predicted, suggested, created_at, result FROM votes"
                " WHERE guild_id = $1 ORDER BY id DESC LIMIT $2",
                guild_id,
                limit,
            )
            return [Vote(r[1], r[2], r[3], r[4], r[0], r[5], r[6]) for r in rows]

        return await self._run("read", list_)

    async def delete_vote(self, guild_id: int, vote_id: int) -> bool:
        async def delete(db: Any) -> bool:
            status = await db.execute(
                "DELETE FROM votes WHERE guild_id = $1 AND id = $2", guild_id, vote_id
            )
            return bool(status != "DELETE 0")

        return await self._run("written", delete)

    async def set_threshold(self, guild_id: int, threshold: float | None) -> None:
        async def write(db: Any) -> None:
            await db.execute(
                "INSERT INTO guild_settings (guild_id, threshold) VALUES ($1, $2)"
                " ON CONFLICT (guild_id) DO UPDATE SET threshold = excluded.threshold",
                guild_id,
                threshold,
            )
            await self._notify(db, guild_id)

        await self._run("written", write)

    async def get_meta(self, key: str) -> str | None:
        async def get(db: Any) -> str | None:
            value = await db.fetchval("SELECT value FROM meta WHERE key = $1", key)
            return None if value is None else str(value)

        return await self._run("read", get)

    async def set_meta(self, key: str, value: str) -> None:
        async def write(db: Any) -> None:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                key,
                value,
            )

        await self._run("written", write)

    async def subscribe(
        self,
        on_change: Callable[[int], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        """Start listening, and return once notifications are heard (or after the timeout).

        The caller loads the registry after this returns, so no write falls between the load
        and the first LISTEN. If listening is not up in time, the listener reloads everything
        once it is.
        """
        if self._listener is not None:
            return
        listening = asyncio.Event()
        self._listener = asyncio.create_task(
            self._listen(on_change, on_reconnect, listening), name="zsl-postgres-listen"
        )
        try:
            await asyncio.wait_for(listening.wait(), self._timeout)
        except TimeoutError:
            log.warning("not listening for changes yet; will reload everything once it is")
            # Setting it now tells the listener that the caller has loaded without it.
            listening.set()

    async def _listen(
        self,
        on_change: Callable[[int], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
        listening: asyncio.Event,
    ) -> None:
        """Keep one LISTEN connection alive; after every reconnect, ask for a full reload."""
        import asyncpg

        pending: set[asyncio.Future[None]] = set()

        def notified(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            # "<guild_id> <origin>"; older versions send a bare "<guild_id>", never ours.
            guild, _, origin = payload.partition(" ")
            if origin == self._origin:
                # This store wrote it and its caller already swapped the snapshot; reloading
                # would re-embed the whole guild under its lock on every write.
                return
            try:
                guild_id = int(guild)
            except ValueError:
                log.warning("ignoring a malformed notification %r", payload)
                return
            task = asyncio.ensure_future(on_change(guild_id))
            pending.add(task)
            task.add_done_callback(finished)

        def finished(task: asyncio.Future[None]) -> None:
            pending.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.warning("reloading a changed guild failed (%r)", task.exception())

        delay, first = 0.2, True
        try:
            while not self._closed:
                try:
                    connection = await asyncpg.connect(
                        self._dsn, timeout=self._timeout, command_timeout=self._timeout
                    )
                except (*_connection_errors(), asyncpg.PostgresError) as exc:
                    log.warning("cannot listen for changes (%r); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                connection.add_termination_listener(_resolver(lost))
                try:
                    await connection.add_listener(CHANNEL, notified)
                    if not first or listening.is_set():
                        # A lost connection, or a first LISTEN after the caller stopped waiting
                        # and loaded the registry: changes may have been missed meanwhile.
                        log.info("listening (again); reloading everything")
                        await on_reconnect()
                    listening.set()
                    first, delay = False, 0.2
                    while not lost.done() and not self._closed:
                        # A dead socket is not always noticed until we use it: probe now and then.
                        await asyncio.wait({lost}, timeout=1.0)
                        if not lost.done():
                            await connection.fetchval("SELECT 1", timeout=self._timeout)
                except (*_connection_errors(), asyncpg.PostgresError, StoreError) as exc:
                    log.warning("lost the change listener (%r); reconnecting", exc)
                finally:
                    if not connection.is_closed():
                        connection.terminate()
        finally:
            for task in pending:  # closing: reloads still running would find the store closed
                task.cancel()

    async def integrity_check(self) -> list[str]:
        async def check(db: Any) -> list[str]:
            rows = await db.fetch(
                "SELECT guild_id, name_key FROM classes WHERE name_key = '' OR name = ''"
            )
            return [f"guild {r[0]}: a class without a name" for r in rows]

        return await self._run("read", check)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        try:
            await asyncio.wait_for(self._pool.close(), self._timeout)
        except TimeoutError:
            log.warning("PostgreSQL did not answer while closing; connections cut")
            self._pool.terminate()


def _forget(task: asyncio.Future[Any]) -> None:
    # An abandoned attempt ends with whatever its cut connection raised; nobody waits for it.
    if not task.cancelled():
        task.exception()


async def _migrate(db: Any) -> None:
    await db.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
    await db.execute("CREATE TABLE IF NOT EXISTS zsl_schema (version INTEGER NOT NULL)")
    version = await db.fetchval("SELECT version FROM zsl_schema")
    if version is None:
        await db.execute("INSERT INTO zsl_schema (version) VALUES (0)")
        version = 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"The database was written by a newer version of zsl (schema {version}, this one"
            f" knows {SCHEMA_VERSION}). Upgrade zsl."
        )
    for number in range(version, SCHEMA_VERSION):
        await db.execute(_MIGRATIONS[number])
        await db.execute("UPDATE zsl_schema SET version = $1", number + 1)
        log.info("migrated PostgreSQL schema to %d", number + 1)


def _resolver(future: asyncio.Future[None]) -> Callable[[object], None]:
    def resolve(_connection: object) -> None:
        if not future.done():
            future.set_result(None)

    return resolve


async def _load(db: Any, guild_id: int | None) -> dict[int, GuildRecord]:
    where, args = ("WHERE guild_id = $1", [guild_id]) if guild_id is not None else ("", [])
    examples: dict[tuple[int, str], list[str]] = {}
    for row in await db.fetch(
        f"SELECT guild_id, name_key, text FROM examples {where} ORDER BY position", *args
    ):
        examples.setdefault((row[0], row[1]), []).append(row[2])
    classes: dict[int, list[ClassDefinition]] = {}
    for row in await db.fetch(
        f"SELECT guild_id, name_key, name, description FROM classes {where}"
        " ORDER BY guild_id, position",
        *args,
    ):
        found = tuple(examples.get((row[0], row[1]), ()))
        classes.setdefault(row[0], []).append(ClassDefinition(row[2], row[3], found))
    thresholds = dict(
        await db.fetch(f"SELECT guild_id, threshold FROM guild_settings {where}", *args)
    )
    return {
        g: GuildRecord(tuple(classes.get(g, ())), thresholds.get(g))
        for g in sorted(classes.keys() | thresholds.keys())
    }


async def _lock_guild(db: Any, guild_id: int) -> None:
    # Serialises writers of one guild across processes, so the count check and the insert
    # cannot interleave with another process's (the class limit holds).
    await db.execute("SELECT pg_advisory_xact_lock($1)", guild_id)


async def _exists(db: Any, guild_id: int, key: str) -> bool:
    found = await db.fetchval(
        "SELECT 1 FROM classes WHERE guild_id = $1 AND name_key = $2", guild_id, key
    )
    return found is not None
