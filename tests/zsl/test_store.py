from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import stat
from pathlib import Path

import pytest

from tests.reliability.outages import fill_registry, garbled_copy
from zsl import StoreError
from zsl.errors import (
    ClassLimitError,
    ClassNotFoundError,
    DuplicateClassError,
    ExampleLimitError,
)
from zsl.records import Autotag, ClassDefinition, GuildRecord, Vote, Watch
from zsl.store import open_store, redact_url
from zsl.store.sql import SCHEMA_VERSION

pytestmark = pytest.mark.asyncio

SPORTS = ClassDefinition("sports", "football match")
MUSIC = ClassDefinition("music", "song album")


async def test_round_trip_survives_reopening(store_url: str) -> None:
    store = await open_store(store_url)
    await store.insert_class(1, SPORTS, 100)
    await store.insert_class(1, MUSIC, 100)
    await store.insert_class(2, MUSIC, 100)
    await store.set_threshold(2, 0.7)
    await store.set_meta("sync", "abc")
    await store.close()

    reopened = await open_store(store_url)
    everything = await reopened.load_all()
    meta = await reopened.get_meta("sync")
    await reopened.close()

    assert everything == {
        1: GuildRecord((SPORTS, MUSIC), None),
        2: GuildRecord((MUSIC,), 0.7),
    }
    assert meta == "abc"


async def test_schema_is_versioned_and_in_wal_mode(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/z.sqlite3")
    await store.close()

    db = sqlite3.connect(tmp_path / "z.sqlite3")
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


# The columns every registry has had since schema 3, as each database names their types:
# one set of migrations writes both, and databases made by earlier versions must still fit.
SCHEMA_COLUMNS = [
    ("autotags", "guild_id", "INTEGER", "bigint"),
    ("autotags", "forum_id", "INTEGER", "bigint"),
    ("autotags", "mode", "TEXT", "text"),
    ("autotags", "max_tags", "INTEGER", "integer"),
    ("autotags", "created_at", "REAL", "double precision"),
    ("classes", "guild_id", "INTEGER", "bigint"),
    ("classes", "name_key", "TEXT", "text"),
    ("classes", "name", "TEXT", "text"),
    ("classes", "description", "TEXT", "text"),
    ("classes", "position", "INTEGER", "integer"),
    ("classes", "updated_at", "REAL", "double precision"),
    ("classes", "emoji", "TEXT", "text"),
    ("examples", "guild_id", "INTEGER", "bigint"),
    ("examples", "name_key", "TEXT", "text"),
    ("examples", "position", "INTEGER", "integer"),
    ("examples", "text", "TEXT", "text"),
    ("examples", "added_at", "REAL", "double precision"),
    ("guild_settings", "guild_id", "INTEGER", "bigint"),
    ("guild_settings", "threshold", "REAL", "double precision"),
    ("guild_versions", "guild_id", "INTEGER", "bigint"),
    ("guild_versions", "version", "INTEGER", "bigint"),
    ("meta", "key", "TEXT", "text"),
    ("meta", "value", "TEXT", "text"),
    ("votes", "id", "INTEGER", "bigint"),
    ("votes", "guild_id", "INTEGER", "bigint"),
    ("votes", "user_id", "INTEGER", "bigint"),
    ("votes", "text", "TEXT", "text"),
    ("votes", "predicted", "TEXT", "text"),
    ("votes", "suggested", "TEXT", "text"),
    ("votes", "created_at", "REAL", "double precision"),
    ("votes", "result", "TEXT", "text"),
    ("watches", "guild_id", "INTEGER", "bigint"),
    ("watches", "channel_id", "INTEGER", "bigint"),
    ("watches", "action", "TEXT", "text"),
    ("watches", "log_channel_id", "INTEGER", "bigint"),
    ("watches", "disabled", "TEXT", "text"),
    ("watches", "created_at", "REAL", "double precision"),
]
SCHEMA_INDEXES = ["votes_by_guild", "votes_one_per_member"]


async def test_a_new_sqlite_registry_has_the_columns_of_existing_ones(tmp_path: Path) -> None:
    await (await open_store(f"sqlite:///{tmp_path}/z.sqlite3")).close()

    db = sqlite3.connect(tmp_path / "z.sqlite3")
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = [
            (table, column[1], column[2])
            for table in sorted(tables)
            for column in db.execute(f"PRAGMA table_info({table})")
        ]
        without_rowid = db.execute(
            "SELECT name FROM sqlite_master WHERE sql LIKE '%WITHOUT ROWID' ORDER BY name"
        ).fetchall()
        indexes = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name"
        ).fetchall()
    finally:
        db.close()

    assert columns == [(table, column, lite) for table, column, lite, _ in SCHEMA_COLUMNS]
    assert without_rowid == [("autotags",), ("classes",), ("examples",), ("watches",)]
    assert [r[0] for r in indexes] == SCHEMA_INDEXES


async def test_a_new_postgres_registry_has_the_columns_of_existing_ones(pg_url: str) -> None:
    import asyncpg

    await (await open_store(pg_url)).close()

    db = await asyncpg.connect(pg_url)
    try:
        columns = await db.fetch(
            "SELECT table_name, column_name, data_type, column_default FROM"
            " information_schema.columns WHERE table_schema = 'public' AND table_name <> "
            "'zsl_schema' ORDER BY table_name, ordinal_position"
        )
        indexes = await db.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
            " AND indexname NOT LIKE '%_pkey' ORDER BY indexname"
        )
    finally:
        await db.close()

    assert [(r[0], r[1], r[2]) for r in columns] == [
        (table, column, pg) for table, column, _, pg in SCHEMA_COLUMNS
    ]
    assert [r[1] for r in columns if (r[3] or "").startswith("nextval(")] == ["id"]
    assert [r[0] for r in indexes] == SCHEMA_INDEXES


def _modes(*paths: Path) -> list[str]:
    return [oct(stat.S_IMODE(path.stat().st_mode)) for path in paths]


async def test_a_new_sqlite_registry_is_for_its_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "new" / "data" / "zsl.sqlite3"
    store = await open_store(f"sqlite:///{database}")
    await store.insert_class(1, SPORTS, 100)
    await store.add_vote(1, Vote(5, "a member's words", "sports", None), 10)

    files = _modes(database, Path(f"{database}-wal"), Path(f"{database}-shm"))
    folders = _modes(database.parent, database.parent.parent)
    await store.close()

    assert files == ["0o600"] * 3
    assert folders == ["0o700"] * 2


async def test_an_existing_registry_keeps_the_mode_its_operator_chose(tmp_path: Path) -> None:
    database = tmp_path / "shared.sqlite3"
    sqlite3.connect(database).close()
    database.chmod(0o640)
    folder = _modes(tmp_path)

    store = await open_store(f"sqlite:///{database}")
    await store.insert_class(1, SPORTS, 100)
    files = _modes(database, Path(f"{database}-wal"), Path(f"{database}-shm"))
    await store.close()

    assert files == ["0o640"] * 3
    assert _modes(tmp_path) == folder


async def test_refuses_a_database_from_a_newer_version(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "z.sqlite3")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()

    with pytest.raises(StoreError, match="newer version of zsl"):
        await open_store(f"sqlite:///{tmp_path}/z.sqlite3")


async def _open_and_read(url: str) -> dict[int, GuildRecord]:
    store = await open_store(url)
    try:
        return await store.load_all()
    finally:
        await store.close()


async def test_refuses_a_file_whose_pages_are_garbled_behind_an_intact_header(
    tmp_path: Path,
) -> None:
    await fill_registry(f"sqlite:///{tmp_path}/good.sqlite3")
    damaged = garbled_copy(tmp_path / "good.sqlite3", tmp_path / "damaged.sqlite3")

    with pytest.raises(StoreError, match="not a usable class database") as refused:
        await _open_and_read(f"sqlite:///{damaged}")

    assert "from a backup" in str(refused.value)


async def test_every_garbled_copy_is_read_or_refused_with_a_sentence(tmp_path: Path) -> None:
    await fill_registry(f"sqlite:///{tmp_path}/good.sqlite3")
    data = (tmp_path / "good.sqlite3").read_bytes()
    outcomes: set[str] = set()

    for seed in range(60):
        rnd = random.Random(seed)
        garbled = bytearray(data)
        for _ in range(1 + seed % 8):
            garbled[rnd.randrange(100, len(garbled))] = rnd.choice((0, rnd.randrange(256)))
        copy = tmp_path / f"garbled{seed}.sqlite3"
        copy.write_bytes(garbled)
        try:
            await _open_and_read(f"sqlite:///{copy}")
            outcomes.add("read")
        except StoreError as exc:
            plain = "not a usable class database" in str(exc) and "from a backup" in str(exc)
            outcomes.add("refused" if plain else str(exc))

    assert outcomes == {"read", "refused"}


async def test_refuses_a_postgres_port_out_of_range() -> None:
    with pytest.raises(StoreError) as refused:
        await open_store("postgresql://zsl:S3cretPW@127.0.0.1:99999/zsl")

    assert str(refused.value).startswith(
        "Cannot connect to PostgreSQL at postgresql://zsl:***@127.0.0.1:99999/zsl ("
    )
    assert "port must be 0-65535" in str(refused.value)


async def test_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "z.sqlite3").write_bytes(b"this is not sqlite" * 100)

    with pytest.raises(StoreError, match="not a usable class database"):
        await open_store(f"sqlite:///{tmp_path}/z.sqlite3")


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://", "data.sqlite3"])
async def test_refuses_unknown_urls(url: str) -> None:
    with pytest.raises(StoreError, match="sqlite:///"):
        await open_store(url)


async def test_unreachable_postgres_is_one_sentence() -> None:
    with pytest.raises(StoreError, match=r"Cannot connect to PostgreSQL.*ZSL_DATABASE_URL"):
        await open_store("postgresql://nobody@127.0.0.1:1/none")


SECRET = "S3cretPW"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+asyncpg://zsl:S3cretPW@h/zsl", "postgresql+asyncpg://zsl:***@h/zsl"),
        ("mysql://zsl:S3cretPW@h:3306/zsl", "mysql://zsl:***@h:3306/zsl"),
        ("postgresql://zsl:S3cret/PW@h/zsl", "postgresql://zsl:***@h/zsl"),  # unescaped
        (
            "postgresql://zsl@h/zsl?sslmode=require&password=S3cretPW",
            "postgresql://zsl@h/zsl?sslmode=require&password=***",
        ),
        ("host=h password='S3cret PW' user=zsl", "host=h password=*** user=zsl"),
        ("postgresql://postgres@127.0.0.1:5432/db", "postgresql://postgres@127.0.0.1:5432/db"),
        ("sqlite:////srv/zsl/data.sqlite3", "sqlite:////srv/zsl/data.sqlite3"),
    ],
)
async def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://zsl:S3cretPW@h/zsl",
        "mysql://zsl:S3cretPW@h/zsl",
        "postgresql://zsl:S3cretPW@127.0.0.1:1/zsl",
        "postgresql://zsl@127.0.0.1:1/zsl?password=S3cretPW",
    ],
)
async def test_refusals_show_the_url_without_its_password(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    with pytest.raises(StoreError) as refused:
        await open_store(url)

    assert redact_url(url) in str(refused.value)
    assert SECRET not in str(refused.value)
    assert SECRET not in caplog.text


async def test_postgres_schema_is_versioned_and_migrated_once(pg_url: str) -> None:
    import asyncpg

    from zsl.store.sql import SCHEMA_VERSION as PG_VERSION

    stores = [await open_store(pg_url) for _ in range(3)]  # reopening migrates nothing again
    for store in stores:
        await store.close()
    db = await asyncpg.connect(pg_url)
    try:
        versions = await db.fetch("SELECT version FROM zsl_schema")
    finally:
        await db.close()

    assert [r[0] for r in versions] == [PG_VERSION]


async def test_postgres_stores_hear_each_others_writes_but_not_their_own(pg_url: str) -> None:
    """Two stores writing through one connection (one backend pid, as when another process's
    connection gets a pid this one used before a server restart) still tell their writes apart."""
    import asyncpg

    from zsl.store.postgres import PostgresStore

    await (await open_store(pg_url)).close()  # the schema
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=1)
    first, second = PostgresStore(pool, pg_url, 5.0), PostgresStore(pool, pg_url, 5.0)
    heard: dict[str, list[int]] = {"first": [], "second": []}

    async def nothing() -> None:
        return None

    for name, store in (("first", first), ("second", second)):

        async def changed(guild_id: int, name: str = name) -> None:
            heard[name].append(guild_id)

        await store.subscribe(changed, nothing)
    try:
        await first.insert_class(1, SPORTS, 100)
        await second.insert_class(2, SPORTS, 100)
        await first.set_threshold(3, 0.5)
        await second.set_threshold(4, 0.5)  # heard last by first: everything before has arrived
        for _ in range(100):
            if heard["first"][-1:] == [4] and heard["second"][-1:] == [3]:
                break
            await asyncio.sleep(0.05)
    finally:
        await first.close()
        await second.close()

    assert heard == {"first": [2, 4], "second": [1, 3]}


async def test_postgres_store_hears_the_bare_payload_of_older_versions(pg_url: str) -> None:
    import asyncpg

    store = await open_store(pg_url)
    heard: list[int] = []

    async def changed(guild_id: int) -> None:
        heard.append(guild_id)

    async def nothing() -> None:
        return None

    await store.subscribe(changed, nothing)
    db = await asyncpg.connect(pg_url)
    try:
        await db.execute("SELECT pg_notify('zsl_guild_changed', '7')")  # a rolling upgrade
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.05)
    finally:
        await db.close()
        await store.close()

    assert heard == [7]


class TestRulesInsideTheTransaction:
    async def test_duplicate_names_ignoring_case(self, store_url: str) -> None:
        store = await open_store(store_url)
        await store.insert_class(1, SPORTS, 100)

        with pytest.raises(DuplicateClassError):
            await store.insert_class(1, ClassDefinition("SPORTS "), 100)
        await store.insert_class(2, ClassDefinition("Sports"), 100)  # other guild: fine
        state = await store.load_all()
        await store.close()

        assert state[1].classes == (SPORTS,)

    async def test_class_limit(self, store_url: str) -> None:
        store = await open_store(store_url)
        await store.insert_class(1, SPORTS, 1)

        with pytest.raises(ClassLimitError):
            await store.insert_class(1, MUSIC, 1)
        state = await store.load_guild(1)
        await store.close()

        assert state.classes == (SPORTS,)

    async def test_replace_keeps_the_position(self, store_url: str) -> None:
        store = await open_store(store_url)
        await store.insert_class(1, SPORTS, 100)
        await store.insert_class(1, MUSIC, 100)

        await store.replace_class(1, "SPORTS", ClassDefinition("football", "goal"))
        with pytest.raises(DuplicateClassError):
            await store.replace_class(1, "football", ClassDefinition("Music"))
        with pytest.raises(ClassNotFoundError):
            await store.replace_class(1, "cooking", ClassDefinition("baking"))
        state = await store.load_guild(1)
        await store.close()

        assert state.classes == (ClassDefinition("football", "goal"), MUSIC)

    async def test_delete(self, store_url: str) -> None:
        store = await open_store(store_url)
        await store.insert_class(1, SPORTS, 100)

        with pytest.raises(ClassNotFoundError):
            await store.delete_class(2, "sports")
        await store.delete_class(1, "Sports")
        state = await store.load_all()
        await store.close()

        assert state == {}


async def test_integrity_check_passes_on_a_sound_file(store_url: str) -> None:
    store = await open_store(store_url)
    await store.insert_class(1, SPORTS, 100)

    problems = await store.integrity_check()
    await store.close()

    assert problems == []


async def test_closed_store_refuses_politely(store_url: str) -> None:
    store = await open_store(store_url)
    await store.close()
    await store.close()  # twice is fine

    with pytest.raises(StoreError, match="closed"):
        await store.load_all()


async def test_two_stores_on_one_database_see_each_other(store_url: str) -> None:
    first, second = await open_store(store_url), await open_store(store_url)

    await first.insert_class(1, SPORTS, 100)
    with pytest.raises(DuplicateClassError):
        await second.insert_class(1, SPORTS, 100)
    seen = await second.load_guild(1)
    await first.close()
    await second.close()

    assert seen.classes == (SPORTS,)


class TestExamplesAndVotes:
    async def test_examples_follow_their_class(self, store_url: str) -> None:
        store = await open_store(store_url)
        await store.insert_class(1, SPORTS, 100)
        await store.add_example(1, "Sports", "what a goal", 5)
        await store.add_example(1, "sports", "great match", 5)
        await store.add_example(1, "sports", "what a goal", 5)  # again: nothing changes

        await store.replace_class(1, "sports", ClassDefinition("football", "goal"))
        renamed = await store.load_guild(1)
        await store.remove_example(1, "football", "what a goal")
        after_removal = await store.load_guild(1)
        await store.delete_class(1, "football")
        await store.insert_class(1, ClassDefinition("football"), 100)
        recreated = await store.load_guild(1)
        await store.close()

        assert renamed.classes[0].examples == ("what a goal", "great match")
        assert after_removal.classes[0].examples == ("great match",)
        assert recreated.classes[0].examples == ()  # deleting a class deletes its examples

    async def test_example_limit_and_missing_class(self, store_url: str) -> None:
        store = await open_store(store_url)
        await store.insert_class(1, SPORTS, 100)
        await store.add_example(1, "sports", "one", 1)

        with pytest.raises(ExampleLimitError, match="1 examples"):
            await store.add_example(1, "sports", "two", 1)
        with pytest.raises(ClassNotFoundError):
            await store.add_example(2, "sports", "other guild", 5)
        state = await store.load_all()
        await store.close()

        assert state[1].classes[0].examples == ("one",)
        assert 2 not in state

    async def test_votes_are_kept_per_guild_newest_first_and_capped(self, store_url: str) -> None:
        store = await open_store(store_url)
        for i in range(4):
            await store.add_vote(1, Vote(10 + i, f"text {i}", "sports", "music"), 3)
        await store.add_vote(2, Vote(99, "elsewhere", "music", None), 3)

        votes = await store.list_votes(1, 10)
        removed = await store.delete_vote(1, votes[0].id)
        not_ours = await store.delete_vote(2, votes[1].id)
        after = await store.list_votes(1, 10)
        other = await store.list_votes(2, 10)
        await store.close()

        assert [v.text for v in votes] == ["text 3", "text 2", "text 1"]
        assert (votes[0].user_id, votes[0].predicted, votes[0].suggested) == (13, "sports", "music")
        assert removed
        assert not not_ours
        assert [v.text for v in after] == ["text 2", "text 1"]
        assert [(v.text, v.suggested) for v in other] == [("elsewhere", None)]


async def test_version_1_database_is_migrated_with_its_classes(tmp_path: Path) -> None:
    from zsl.store.sqlite import MIGRATIONS

    db = sqlite3.connect(tmp_path / "old.sqlite3")
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO classes VALUES (1, 'sports', 'sports', 'football match', 0, 0.0)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()

    store = await open_store(f"sqlite:///{tmp_path}/old.sqlite3")
    await store.add_example(1, "sports", "goal!", 5)
    state = await store.load_all()
    await store.close()

    assert state[1].classes == (ClassDefinition("sports", "football match", ("goal!",)),)


async def test_bulk_insert_stores_each_guilds_classes_in_order(store_url: str) -> None:
    store = await open_store(store_url)
    await store.bulk_insert_classes([(7, SPORTS), (8, MUSIC), (7, MUSIC)])
    state = await store.load_all()
    await store.close()

    assert state[7].classes == (SPORTS, MUSIC)
    assert state[8].classes == (MUSIC,)


async def test_bulk_insert_with_a_name_twice_in_a_guild_stores_nothing(store_url: str) -> None:
    store = await open_store(store_url)
    await store.insert_class(1, SPORTS, 100)

    with pytest.raises(StoreError):
        await store.bulk_insert_classes([(7, SPORTS), (8, MUSIC), (8, ClassDefinition("Music"))])
    state = await store.load_all()
    await store.close()

    assert set(state) == {1}
    assert state[1].classes == (SPORTS,)


async def test_version_4_database_gets_emoji_and_watches_and_keeps_its_classes(
    tmp_path: Path,
) -> None:
    from zsl.store.sqlite import MIGRATIONS

    db = sqlite3.connect(tmp_path / "old.sqlite3")
    for script in MIGRATIONS[:4]:
        db.executescript(script)
    db.execute("INSERT INTO classes VALUES (1, 'sports', 'sports', 'football match', 0, 0.0)")
    db.execute("PRAGMA user_version = 4")
    db.commit()
    db.close()

    store = await open_store(f"sqlite:///{tmp_path}/old.sqlite3")
    await store.set_class_emoji(1, "Sports", "\u26bd")
    await store.set_watch(Watch(1, 10, "react"))
    state = await store.load_all()
    watches = await store.list_watches()
    await store.close()

    assert state[1].classes == (ClassDefinition("sports", "football match", (), "\u26bd"),)
    assert watches == [Watch(1, 10, "react")]


async def test_watches_are_kept_per_guild_replaced_and_removed(store_url: str) -> None:
    store = await open_store(store_url)
    await store.set_watch(Watch(1, 10, "react"))
    await store.set_watch(Watch(1, 11, "log", 12))
    await store.set_watch(Watch(2, 20, "log", 21))
    await store.set_watch(Watch(1, 10, "react", disabled="Add Reactions"))
    disabled = await store.list_watches(1)
    await store.set_watch(Watch(1, 10, "log", 12))  # set again: acts again
    removed = await store.delete_watch(1, 11)
    removed_twice = await store.delete_watch(1, 11)
    await store.close()
    reopened = await open_store(store_url)
    everything = await reopened.list_watches()
    await reopened.close()

    assert disabled == [Watch(1, 10, "react", None, "Add Reactions"), Watch(1, 11, "log", 12)]
    assert (removed, removed_twice) == (True, False)
    assert everything == [Watch(1, 10, "log", 12), Watch(2, 20, "log", 21)]


async def test_a_class_emoji_is_kept_and_a_missing_class_refused(store_url: str) -> None:
    store = await open_store(store_url)
    await store.insert_class(1, ClassDefinition("bug", "crash error", (), "\U0001f41b"), 100)
    await store.insert_class(1, MUSIC, 100)
    await store.set_class_emoji(1, "music", "\U0001f3b5")
    await store.replace_class(1, "bug", ClassDefinition("bugs", "crash"))  # keeps its emoji
    with pytest.raises(ClassNotFoundError):
        await store.set_class_emoji(1, "nothing", "\U0001f41b")
    state = await store.load_guild(1)
    await store.close()

    assert [(c.name, c.emoji) for c in state.classes] == [
        ("bugs", "\U0001f41b"),
        ("music", "\U0001f3b5"),
    ]


async def test_tagged_forums_are_kept_per_guild_replaced_and_removed(store_url: str) -> None:
    store = await open_store(store_url)
    await store.set_autotag(Autotag(1, 10, "apply", 2))
    await store.set_autotag(Autotag(2, 20, "suggest", 1))
    await store.set_autotag(Autotag(1, 10, "suggest", 3))  # set again: changed
    await store.set_autotag(Autotag(1, 11, "apply", 1))
    removed = await store.delete_autotag(1, 11)
    removed_twice = await store.delete_autotag(1, 11)
    await store.close()
    reopened = await open_store(store_url)
    everything = await reopened.list_autotags()
    one = await reopened.list_autotags(2)
    await reopened.close()

    assert (removed, removed_twice) == (True, False)
    assert everything == [Autotag(1, 10, "suggest", 3), Autotag(2, 20, "suggest", 1)]
    assert one == [Autotag(2, 20, "suggest", 1)]
