"""The registry in SQL, written once for SQLite and PostgreSQL: the schema and its migrations,
the loader, and every call's rules (duplicates, look-alikes, limits, votes, settings).

The rules run over :class:`Db`: one connection inside one transaction, whose backend turns the
``?`` placeholders into its own, locks a guild and announces a change where it has to. A backend
(:mod:`zsl.store.sqlite`, :mod:`zsl.store.postgres`) subclasses :class:`SQLStore` and keeps only
its connections, transactions, deadlines, notifications and error translation.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar

from zsl.errors import (
    ClassFileError,
    ClassLimitError,
    ClassNotFoundError,
    DuplicateClassError,
    ExampleLimitError,
    InvalidClassError,
    StoreError,
    shown_input,
)
from zsl.records import (
    Autotag,
    ClassDefinition,
    ClassSetFile,
    GuildRecord,
    Vote,
    Watch,
    check_not_look_alike,
    has_broken_characters,
    name_key,
    strip_invisible,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ColumnTypes:
    """What the schema's columns are called in one database's SQL."""

    big_integer: str
    """Discord ids: 64 bits."""
    real: str
    serial_key: str
    """A numbered row's primary key, counted up by the database."""
    keyed_table: str
    """Options of a table that is only ever reached through its primary key."""


# Each entry moves the schema one version up; a backend counts the applied ones. Existing
# databases were made by these statements: change what they create only by a new entry.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE classes (
        guild_id    {big_integer} NOT NULL,
        name_key    TEXT NOT NULL,
        name        TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        position    INTEGER NOT NULL,
        updated_at  {real} NOT NULL,
        PRIMARY KEY (guild_id, name_key)
    ){keyed_table};
    CREATE TABLE guild_settings (
        guild_id  {big_integer} PRIMARY KEY,
        threshold {real}
    );
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE examples (
        guild_id {big_integer} NOT NULL,
        name_key TEXT NOT NULL,
        position INTEGER NOT NULL,
        text     TEXT NOT NULL,
        added_at {real} NOT NULL,
        PRIMARY KEY (guild_id, name_key, position),
        FOREIGN KEY (guild_id, name_key) REFERENCES classes (guild_id, name_key)
            ON UPDATE CASCADE ON DELETE CASCADE
    ){keyed_table};
    CREATE TABLE votes (
        id         {serial_key},
        guild_id   {big_integer} NOT NULL,
        user_id    {big_integer} NOT NULL,
        text       TEXT NOT NULL,
        predicted  TEXT NOT NULL,
        suggested  TEXT,
        created_at {real} NOT NULL
    );
    CREATE INDEX votes_by_guild ON votes (guild_id, id);
    """,
    # One vote per member and result: the result a vote is about (NULL for older votes, and
    # NULLs never collide in a unique index).
    """
    ALTER TABLE votes ADD COLUMN result TEXT;
    CREATE UNIQUE INDEX votes_one_per_member ON votes (guild_id, user_id, result);
    """,
    # A change counter per guild, bumped by every write of the guild in its transaction: a
    # process that was disconnected compares counters and re-reads only the guilds that moved.
    # A guild without a row is at version 0.
    """
    CREATE TABLE guild_versions (
        guild_id {big_integer} PRIMARY KEY,
        version  {big_integer} NOT NULL
    );
    """,
    # A class's optional emoji, and the watched channels: what the bot does on its own with
    # each new message there ("react" or "log"); ``disabled`` says why a watch stopped.
    """
    ALTER TABLE classes ADD COLUMN emoji TEXT;
    CREATE TABLE watches (
        guild_id       {big_integer} NOT NULL,
        channel_id     {big_integer} NOT NULL,
        action         TEXT NOT NULL,
        log_channel_id {big_integer},
        disabled       TEXT,
        created_at     {real} NOT NULL,
        PRIMARY KEY (guild_id, channel_id)
    ){keyed_table};
    """,
    # Forums whose new posts get tags by class: "apply" adds them, "suggest" proposes them.
    """
    CREATE TABLE autotags (
        guild_id   {big_integer} NOT NULL,
        forum_id   {big_integer} NOT NULL,
        mode       TEXT NOT NULL,
        max_tags   INTEGER NOT NULL,
        created_at {real} NOT NULL,
        PRIMARY KEY (guild_id, forum_id)
    ){keyed_table};
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


def migrations(types: ColumnTypes) -> tuple[str, ...]:
    """Each schema version's SQL script in one database's words, oldest first."""
    return tuple(script.format(**asdict(types)) for script in _MIGRATIONS)


class Db(Protocol):
    """One connection inside one transaction (outside any, for reads that ask for none: see
    :meth:`SQLStore.transact`), as the rules use it."""

    types: ColumnTypes

    async def fetch(self, sql: str, *args: object) -> Sequence[Sequence[Any]]:
        """The rows of a query whose parameters are ``?``."""
        ...

    async def execute(self, sql: str, *args: object) -> int:
        """Run a statement whose parameters are ``?``; the number of rows it changed."""
        ...

    def one_of(self, column: str, values: Sequence[int]) -> tuple[str, tuple[object, ...]]:
        """A condition that ``column`` holds one of ``values``, and its parameters."""
        ...

    async def lock_guild(self, guild_id: int) -> None:
        """Keep the guild's other writers (in any process) out until the transaction ends."""
        ...

    async def changed(self, guild_id: int) -> None:
        """Tell the other processes, once the transaction commits, that the guild changed."""
        ...

    async def set_schema_version(self, version: int) -> None:
        """Record that the schema is at ``version``, as part of the transaction."""
        ...


Rule = Callable[["Db"], Coroutine[Any, Any, T]]
"""A transaction's work, given the connection inside it."""


class OffSchemaError(Exception):
    """A stored value is not of the type its column promises: the database is damaged."""


def check_version(version: int, name: str = "") -> None:
    """Refuse a database whose schema is at a ``version`` this zsl does not know.

    Raises:
        StoreError: the database (called ``name`` in the message) was written by a newer zsl.
    """
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"The database {name + ' ' if name else ''}was written by a newer version of zsl"
            f" (schema {version}, this one knows {SCHEMA_VERSION}). Upgrade zsl."
        )


async def migrate(db: Db, version: int, name: str = "") -> None:
    """Bring the schema from ``version`` up to :data:`SCHEMA_VERSION`, in the caller's
    transaction; ``name`` says which database in messages.

    Raises:
        StoreError: the database was written by a newer version of zsl.
    """
    check_version(version, name)
    scripts = migrations(db.types)
    for number in range(version, SCHEMA_VERSION):
        for statement in scripts[number].split(";"):
            if statement.strip():
                await db.execute(statement)
        await db.set_schema_version(number + 1)
        log.info("migrated %s to schema %d", name or "the database", number + 1)


def finish(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end on the spot, in this thread.

    For rules over a :class:`Db` whose awaits never suspend (SQLite's calls are made on the
    spot, in the worker thread that owns the connection).
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError("a transaction meant to run on the spot waited for something")


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


class SQLStore(ABC):
    """:class:`zsl.store.Store`'s calls over SQL; a backend supplies :meth:`transact`."""

    @abstractmethod
    async def transact(self, verb: str, work: Rule[T], *, atomic: bool = True) -> T:
        """Run ``work`` in one transaction and commit it, or roll it back if it raises.

        ``verb`` says what the call does to the registry in a refusal ("read", "written").
        ``atomic=False``: ``work`` only reads, and each of its statements is consistent by
        itself (a single statement is its own snapshot), so no transaction is opened around
        them: on PostgreSQL that saves the round trips of BEGIN and COMMIT.
        """

    async def load_all(self) -> dict[int, GuildRecord]:
        return await self.transact("read", lambda db: _load(db, None), atomic=False)

    async def load_guild(self, guild_id: int) -> GuildRecord:
        return (await self.load_guilds([guild_id]))[guild_id]

    async def load_guilds(self, guild_ids: Collection[int]) -> dict[int, GuildRecord]:
        wanted = sorted(set(guild_ids))

        async def load(db: Db) -> dict[int, GuildRecord]:
            found: dict[int, GuildRecord] = {}
            for start in range(0, len(wanted), _GUILDS_PER_QUERY):
                found.update(await _load(db, wanted[start : start + _GUILDS_PER_QUERY]))
            return {guild: found.get(guild, GuildRecord()) for guild in wanted}

        # Each guild is read whole by one statement of _load: its record is consistent even
        # when a long list takes several statements.
        return await self.transact("read", load, atomic=False) if wanted else {}

    async def versions(self, guild_ids: Collection[int]) -> dict[int, int]:
        wanted = sorted(set(guild_ids))

        async def read(db: Db) -> dict[int, int]:
            found: dict[int, int] = {}
            for start in range(0, len(wanted), _GUILDS_PER_QUERY):
                where, args = db.one_of("guild_id", wanted[start : start + _GUILDS_PER_QUERY])
                rows = await db.fetch(
                    f"SELECT guild_id, version FROM guild_versions WHERE {where}", *args
                )
                found.update((guild, version) for guild, version in _as_stored(rows, int, int))
            return {guild: found.get(guild, 0) for guild in wanted}

        return await self.transact("read", read, atomic=False) if wanted else {}

    async def guild_ids(self) -> list[int]:
        async def read(db: Db) -> list[int]:
            rows = await db.fetch(
                "SELECT guild_id FROM classes UNION"
                " SELECT guild_id FROM guild_settings WHERE threshold IS NOT NULL"
            )
            return sorted(guild for (guild,) in _as_stored(rows, int))

        return await self.transact("read", read)

    async def insert_class(self, guild_id: int, cls: ClassDefinition, max_classes: int) -> None:
        check_storable(cls)

        async def insert(db: Db) -> None:
            # Under the guild's lock: no other process can add a class or a look-alike meanwhile.
            await db.lock_guild(guild_id)
            ((count, last),) = await db.fetch(
                "SELECT count(*), coalesce(max(position), -1) FROM classes WHERE guild_id = ?",
                guild_id,
            )
            if await _exists(db, guild_id, cls.key):
                raise DuplicateClassError(cls.name)
            names = await db.fetch("SELECT name FROM classes WHERE guild_id = ?", guild_id)
            check_not_look_alike(cls.name, (row[0] for row in names))
            if count >= max_classes:
                raise ClassLimitError(max_classes)
            await _insert(db, guild_id, cls, last + 1)
            await _changed(db, guild_id)

        await self.transact("written", insert)

    async def import_classes(
        self, guild_id: int, class_set: ClassSetFile, max_classes: int, max_examples: int
    ) -> None:
        for cls in class_set.classes:
            check_storable(cls)

        async def insert(db: Db) -> None:
            # The rules of insert_class and add_example for every class of the file, under the
            # guild's lock; any refusal rolls the whole file back.
            await db.lock_guild(guild_id)
            ((count, last),) = await db.fetch(
                "SELECT count(*), coalesce(max(position), -1) FROM classes WHERE guild_id = ?",
                guild_id,
            )
            names = [
                row[0]
                for row in await db.fetch("SELECT name FROM classes WHERE guild_id = ?", guild_id)
            ]
            for number, cls in enumerate(class_set.classes, start=1):
                try:
                    if await _exists(db, guild_id, cls.key):
                        raise DuplicateClassError(cls.name)
                    check_not_look_alike(cls.name, names)
                    if len(cls.examples) > max_examples:
                        raise ExampleLimitError(cls.name, max_examples)
                except (DuplicateClassError, ExampleLimitError) as exc:
                    raise ClassFileError(
                        f"Class {number} of the file ('{shown_input(cls.name)}'): {exc}",
                        number=number,
                        name=cls.name,
                        cause=exc,
                    ) from exc
                names.append(cls.name)
            if count + len(class_set.classes) > max_classes:
                raise ClassFileError.too_many(len(class_set.classes), count, max_classes)
            for position, cls in enumerate(class_set.classes, start=last + 1):
                await _insert(db, guild_id, cls, position)
                for number, text in enumerate(cls.examples):
                    await db.execute(
                        "INSERT INTO examples (guild_id, name_key, position, text, added_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        *(guild_id, cls.key, number, text, time.time()),
                    )
            if class_set.threshold is not None:
                await _set_threshold(db, guild_id, class_set.threshold)
            await _changed(db, guild_id)

        await self.transact("written", insert)

    async def set_class_emoji(self, guild_id: int, name: str, emoji: str | None) -> None:
        async def write(db: Db) -> None:
            found = await db.execute(
                "UPDATE classes SET emoji = ?, updated_at = ? WHERE guild_id = ? AND name_key = ?",
                *(emoji, time.time(), guild_id, name_key(name)),
            )
            if not found:
                raise ClassNotFoundError(name)
            await _changed(db, guild_id)

        await self.transact("written", write)

    async def set_watch(self, watch: Watch) -> None:
        async def write(db: Db) -> None:
            # Setting a watch again replaces it, and enables it again.
            await db.execute(
                "INSERT INTO watches"
                " (guild_id, channel_id, action, log_channel_id, disabled, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, channel_id) DO UPDATE SET action = excluded.action,"
                " log_channel_id = excluded.log_channel_id, disabled = excluded.disabled",
                *(watch.guild_id, watch.channel_id, watch.action, watch.log_channel_id),
                *(watch.disabled, time.time()),
            )

        await self.transact("written", write)

    async def delete_watch(self, guild_id: int, channel_id: int) -> bool:
        async def delete(db: Db) -> bool:
            gone = await db.execute(
                "DELETE FROM watches WHERE guild_id = ? AND channel_id = ?", guild_id, channel_id
            )
            return bool(gone)

        return await self.transact("written", delete)

    async def set_autotag(self, autotag: Autotag) -> None:
        async def write(db: Db) -> None:
            await db.execute(
                "INSERT INTO autotags (guild_id, forum_id, mode, max_tags, created_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, forum_id) DO UPDATE SET mode = excluded.mode,"
                " max_tags = excluded.max_tags",
                *(autotag.guild_id, autotag.forum_id, autotag.mode, autotag.max_tags),
                time.time(),
            )

        await self.transact("written", write)

    async def delete_autotag(self, guild_id: int, forum_id: int) -> bool:
        async def delete(db: Db) -> bool:
            gone = await db.execute(
                "DELETE FROM autotags WHERE guild_id = ? AND forum_id = ?", guild_id, forum_id
            )
            return bool(gone)

        return await self.transact("written", delete)

    async def list_autotags(self, guild_id: int | None = None) -> list[Autotag]:
        async def read(db: Db) -> list[Autotag]:
            where, args = ("WHERE guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
            rows = await db.fetch(
                f"SELECT guild_id, forum_id, mode, max_tags FROM autotags {where}"
                " ORDER BY guild_id, created_at, forum_id",
                *args,
            )
            return [Autotag(*row) for row in _as_stored(rows, int, int, str, int)]

        return await self.transact("read", read)

    async def list_watches(self, guild_id: int | None = None) -> list[Watch]:
        async def read(db: Db) -> list[Watch]:
            where, args = ("WHERE guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
            rows = await db.fetch(
                "SELECT guild_id, channel_id, action, log_channel_id, disabled FROM watches"
                f" {where} ORDER BY guild_id, created_at, channel_id",
                *args,
            )
            optional_id, optional_text = (int, type(None)), (str, type(None))
            return [
                Watch(*row) for row in _as_stored(rows, int, int, str, optional_id, optional_text)
            ]

        return await self.transact("read", read)

    async def replace_class(self, guild_id: int, old_name: str, cls: ClassDefinition) -> None:
        check_storable(cls)

        async def replace(db: Db) -> None:
            await db.lock_guild(guild_id)
            old_key = name_key(old_name)
            if not await _exists(db, guild_id, old_key):
                raise ClassNotFoundError(old_name)
            if cls.key != old_key and await _exists(db, guild_id, cls.key):
                raise DuplicateClassError(cls.name)
            if cls.key != old_key:  # a look-alike of its own old name is fine
                others = await db.fetch(
                    "SELECT name FROM classes WHERE guild_id = ? AND name_key <> ?",
                    *(guild_id, old_key),
                )
                check_not_look_alike(cls.name, (row[0] for row in others))
            await db.execute(
                "UPDATE classes SET name_key = ?, name = ?, description = ?, updated_at = ?"
                " WHERE guild_id = ? AND name_key = ?",
                *(cls.key, cls.name, cls.description, time.time(), guild_id, old_key),
            )
            await _changed(db, guild_id)

        await self.transact("written", replace)

    async def delete_class(self, guild_id: int, name: str) -> None:
        async def delete(db: Db) -> None:
            gone = await db.execute(
                "DELETE FROM classes WHERE guild_id = ? AND name_key = ?", guild_id, name_key(name)
            )
            if not gone:
                raise ClassNotFoundError(name)
            await _changed(db, guild_id)

        await self.transact("written", delete)

    async def add_example(
        self, guild_id: int, class_name: str, text: str, max_examples: int
    ) -> None:
        async def add(db: Db) -> None:
            await db.lock_guild(guild_id)
            key = name_key(class_name)
            if not await _exists(db, guild_id, key):
                raise ClassNotFoundError(class_name)
            rows = await db.fetch(
                "SELECT text FROM examples WHERE guild_id = ? AND name_key = ?", guild_id, key
            )
            if any(row[0] == text for row in rows):
                return
            if len(rows) >= max_examples:
                raise ExampleLimitError(class_name, max_examples)
            await db.execute(
                "INSERT INTO examples (guild_id, name_key, position, text, added_at) VALUES"
                " (?, ?, (SELECT coalesce(max(position), -1) + 1 FROM examples"
                "         WHERE guild_id = ? AND name_key = ?), ?, ?)",
                *(guild_id, key, guild_id, key, text, time.time()),
            )
            await _changed(db, guild_id)

        await self.transact("written", add)

    async def remove_example(self, guild_id: int, class_name: str, text: str) -> None:
        async def remove(db: Db) -> None:
            key = name_key(class_name)
            if not await _exists(db, guild_id, key):
                raise ClassNotFoundError(class_name)
            await db.execute(
                "DELETE FROM examples WHERE guild_id = ? AND name_key = ? AND text = ?",
                *(guild_id, key, text),
            )
            await _changed(db, guild_id)

        await self.transact("written", remove)

    async def add_vote(self, guild_id: int, vote: Vote, max_votes: int) -> None:
        async def add(db: Db) -> None:
            # A member's later vote on the same result replaces theirs, keeping its number.
            await db.execute(
                "INSERT INTO votes"
                " (guild_id, user_id, text, predicted, suggested, created_at, result)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, user_id, result) DO UPDATE SET"
                " text = excluded.text, predicted = excluded.predicted,"
                " suggested = excluded.suggested, created_at = excluded.created_at",
                *(guild_id, vote.user_id, vote.text, vote.predicted, vote.suggested),
                *(time.time(), vote.result),
            )
            await db.execute(
                "DELETE FROM votes WHERE guild_id = ? AND id NOT IN"
                " (SELECT id FROM votes WHERE guild_id = ? ORDER BY id DESC LIMIT ?)",
                *(guild_id, guild_id, max_votes),
            )

        await self.transact("written", add)

    async def list_votes(self, guild_id: int, limit: int) -> list[Vote]:
        async def list_(db: Db) -> list[Vote]:
            rows = await db.fetch(
                "SELECT id, user_id, text, predicted, suggested, created_at, result FROM votes"
                " WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
                *(guild_id, limit),
            )
            optional = (str, type(None))
            return [
                Vote(user_id, text, predicted, suggested, vote_id, created_at, result)
                for vote_id, user_id, text, predicted, suggested, created_at, result in _as_stored(
                    rows, int, int, str, str, optional, _NUMBER, optional
                )
            ]

        return await self.transact("read", list_)

    async def delete_vote(self, guild_id: int, vote_id: int) -> bool:
        async def delete(db: Db) -> bool:
            gone = await db.execute(
                "DELETE FROM votes WHERE guild_id = ? AND id = ?", guild_id, vote_id
            )
            return bool(gone)

        return await self.transact("written", delete)

    async def set_threshold(self, guild_id: int, threshold: float | None) -> None:
        async def write(db: Db) -> None:
            await _set_threshold(db, guild_id, threshold)
            await _changed(db, guild_id)

        await self.transact("written", write)

    async def get_meta(self, key: str) -> str | None:
        async def get(db: Db) -> str | None:
            rows = await db.fetch("SELECT value FROM meta WHERE key = ?", key)
            return str(rows[0][0]) if rows else None

        return await self.transact("read", get)

    async def set_meta(self, key: str, value: str) -> None:
        async def write(db: Db) -> None:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                *(key, value),
            )

        await self.transact("written", write)


async def _insert(db: Db, guild_id: int, cls: ClassDefinition, position: int) -> None:
    await db.execute(
        "INSERT INTO classes"
        " (guild_id, name_key, name, description, emoji, position, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        *(guild_id, cls.key, cls.name, cls.description, cls.emoji, position, time.time()),
    )


async def _set_threshold(db: Db, guild_id: int, threshold: float | None) -> None:
    await db.execute(
        "INSERT INTO guild_settings (guild_id, threshold) VALUES (?, ?)"
        " ON CONFLICT (guild_id) DO UPDATE SET threshold = excluded.threshold",
        *(guild_id, threshold),
    )


async def _changed(db: Db, guild_id: int) -> None:
    """Count a change of the guild and announce it: part of the write's transaction."""
    await db.execute(
        "INSERT INTO guild_versions (guild_id, version) VALUES (?, 1)"
        " ON CONFLICT (guild_id) DO UPDATE SET version = guild_versions.version + 1",
        guild_id,
    )
    await db.changed(guild_id)


CLASS_COLUMNS = ("guild_id", "name_key", "name", "description", "position", "updated_at")
"""The columns of a row of :func:`class_rows`, in order."""


def class_rows(rows: Iterable[tuple[int, ClassDefinition]]) -> list[tuple[Any, ...]]:
    """The ``classes`` table rows of a bulk insert (:meth:`zsl.store.Store.bulk_insert_classes`):
    each guild's classes numbered in order, all stamped with one time.

    Raises:
        InvalidClassError: a class the registry cannot hold; nothing is stored.
    """
    now = time.time()
    positions: dict[int, int] = {}
    table = []
    for guild_id, cls in rows:
        check_storable(cls)
        position = positions[guild_id] = positions.get(guild_id, -1) + 1
        table.append((guild_id, cls.key, cls.name, cls.description, position, now))
    return table


async def _exists(db: Db, guild_id: int, key: str) -> bool:
    rows = await db.fetch(
        "SELECT 1 FROM classes WHERE guild_id = ? AND name_key = ?", guild_id, key
    )
    return bool(rows)


_GUILDS_PER_QUERY = 200
"""Guilds read by one statement. Each of the four tables of :func:`_load` names them: a SQLite
``IN (...)`` list takes 800 parameters, within the 999 of SQLite before 3.32."""

# What a row of _LOAD_SQL holds, by its first column; the order in which they are sorted.
_EXAMPLE, _CLASS, _SETTINGS, _VERSION = range(4)
_LOAD_SQL = f"""
    SELECT {_EXAMPLE} AS kind, guild_id, name_key, text, NULL AS description, NULL AS emoji,
           position, CAST(NULL AS {{real}}) AS threshold, CAST(NULL AS {{big_integer}}) AS version
      FROM examples {{where}}
    UNION ALL
    SELECT {_CLASS}, guild_id, name_key, name, description, emoji, position, NULL, NULL
      FROM classes {{where}}
    UNION ALL
    SELECT {_SETTINGS}, guild_id, NULL, NULL, NULL, NULL, NULL, threshold, NULL
      FROM guild_settings {{where}}
    UNION ALL
    SELECT {_VERSION}, guild_id, NULL, NULL, NULL, NULL, NULL, NULL, version
      FROM guild_versions {{where}}
    ORDER BY kind, guild_id, position
"""
"""The rows of four tables in one statement: one round trip, and one snapshot of them all.

Each row is tagged with the table it comes from; the columns a table lacks are NULL (the first
branch names their types: PostgreSQL cannot infer a type from NULLs alone). Examples come
first, each class's in order, so that their classes can take them; classes in each guild's
order."""


async def _load(db: Db, guild_ids: Sequence[int] | None) -> dict[int, GuildRecord]:
    """The records of ``guild_ids`` (all guilds if None) that have classes or settings, read
    by one statement."""
    where: str = ""
    args: tuple[object, ...] = ()
    if guild_ids is not None:
        condition, args = db.one_of("guild_id", guild_ids)
        where = f"WHERE {condition}"
    sql = _LOAD_SQL.format(where=where, real=db.types.real, big_integer=db.types.big_integer)
    rows = await db.fetch(sql, *args * 4)
    examples: dict[tuple[int, str], list[str]] = {}
    classes: dict[int, list[ClassDefinition]] = {}
    thresholds: dict[int, float | None] = {}
    versions: dict[int, int] = {}
    # The checks of _as_stored, inline: each kind of row holds other columns.
    for kind, guild, key, text, description, emoji, _position, threshold, version in rows:
        if not isinstance(guild, int):
            raise OffSchemaError("a value off the schema")
        if kind == _EXAMPLE:
            if not (isinstance(key, str) and isinstance(text, str)):
                raise OffSchemaError("a value off the schema")
            examples.setdefault((guild, key), []).append(text)
        elif kind == _CLASS:
            if not (
                isinstance(key, str)
                and isinstance(text, str)
                and isinstance(description, str)
                and isinstance(emoji, (str, type(None)))
            ):
                raise OffSchemaError("a value off the schema")
            found = tuple(examples.get((guild, key), ()))
            classes.setdefault(guild, []).append(ClassDefinition(text, description, found, emoji))
        elif kind == _SETTINGS:
            if not isinstance(threshold, (*_NUMBER, type(None))):
                raise OffSchemaError("a value off the schema")
            thresholds[guild] = threshold
        else:
            if not isinstance(version, int):
                raise OffSchemaError("a value off the schema")
            versions[guild] = version
    asked = set(guild_ids or ())
    return {
        guild: GuildRecord(
            tuple(classes.get(guild, ())), thresholds.get(guild), versions.get(guild, 0)
        )
        # A guild asked for by id keeps its counter even with nothing left in it.
        for guild in sorted(classes.keys() | thresholds.keys() | (versions.keys() & asked))
    }


_NUMBER = (int, float)


def _as_stored(
    rows: Sequence[Sequence[Any]], *kinds: type | tuple[type, ...]
) -> list[Sequence[Any]]:
    """``rows``, each checked against the types the schema promises.

    Garbled pages can read back as NULLs or values of the wrong type while SQLite itself sees
    nothing wrong; that is a damaged database too, not a reason to crash on it later.

    Raises:
        OffSchemaError: a value is not of its column's type.
    """
    for row in rows:
        if not all(isinstance(value, kind) for value, kind in zip(row, kinds, strict=True)):
            raise OffSchemaError("a value off the schema")
    return list(rows)
