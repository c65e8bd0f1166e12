from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from zsl import StoreError
from zsl.errors import ClassLimitError, ClassNotFoundError, DuplicateClassError
from zsl.store import ClassDefinition, GuildRecord, SQLiteStore, open_store
from zsl.store.sqlite import SCHEMA_VERSION

pytestmark = pytest.mark.asyncio

SPORTS = ClassDefinition("sports", "football match")
MUSIC = ClassDefinition("music", "song album")


async def test_round_trip_survives_reopening(db_url: str) -> None:
    store = await open_store(db_url)
    await store.insert_class(1, SPORTS, 100)
    await store.insert_class(1, MUSIC, 100)
    await store.insert_class(2, MUSIC, 100)
    await store.set_threshold(2, 0.7)
    await store.set_meta("sync", "abc")
    await store.close()

    reopened = await open_store(db_url)
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


async def test_refuses_a_database_from_a_newer_version(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "z.sqlite3")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()

    with pytest.raises(StoreError, match="newer version of zsl"):
        await open_store(f"sqlite:///{tmp_path}/z.sqlite3")


async def test_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "z.sqlite3").write_bytes(b"this is not sqlite" * 100)

    with pytest.raises(StoreError, match="not a usable class database"):
        await open_store(f"sqlite:///{tmp_path}/z.sqlite3")


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://", "data.sqlite3"])
async def test_refuses_unknown_urls(url: str) -> None:
    with pytest.raises(StoreError, match="sqlite:///"):
        await open_store(url)


class TestRulesInsideTheTransaction:
    async def test_duplicate_names_ignoring_case(self, db_url: str) -> None:
        store = await open_store(db_url)
        await store.insert_class(1, SPORTS, 100)

        with pytest.raises(DuplicateClassError):
            await store.insert_class(1, ClassDefinition("SPORTS "), 100)
        await store.insert_class(2, ClassDefinition("Sports"), 100)  # other guild: fine
        state = await store.load_all()
        await store.close()

        assert state[1].classes == (SPORTS,)

    async def test_class_limit(self, db_url: str) -> None:
        store = await open_store(db_url)
        await store.insert_class(1, SPORTS, 1)

        with pytest.raises(ClassLimitError):
            await store.insert_class(1, MUSIC, 1)
        state = await store.load_guild(1)
        await store.close()

        assert state.classes == (SPORTS,)

    async def test_replace_keeps_the_position(self, db_url: str) -> None:
        store = await open_store(db_url)
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

    async def test_delete(self, db_url: str) -> None:
        store = await open_store(db_url)
        await store.insert_class(1, SPORTS, 100)

        with pytest.raises(ClassNotFoundError):
            await store.delete_class(2, "sports")
        await store.delete_class(1, "Sports")
        state = await store.load_all()
        await store.close()

        assert state == {}


async def test_integrity_check_passes_on_a_sound_file(db_url: str) -> None:
    store = await open_store(db_url)
    await store.insert_class(1, SPORTS, 100)

    problems = await store.integrity_check()
    await store.close()

    assert problems == []


async def test_closed_store_refuses_politely(db_url: str) -> None:
    store = await open_store(db_url)
    await store.close()
    await store.close()  # twice is fine

    with pytest.raises(StoreError, match="closed"):
        await store.load_all()


async def test_two_connections_on_one_file_see_each_other(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    first, second = await SQLiteStore.open(path), await SQLiteStore.open(path)

    await first.insert_class(1, SPORTS, 100)
    with pytest.raises(DuplicateClassError):
        await second.insert_class(1, SPORTS, 100)
    seen = await second.load_guild(1)
    await first.close()
    await second.close()

    assert seen.classes == (SPORTS,)
