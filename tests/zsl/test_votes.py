"""Members' votes: one per member and result (a later vote replaces theirs), on both stores,
and votes kept from before results had an identity survive the migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from zsl.records import Vote
from zsl.store import open_store
from zsl.store.sql import SCHEMA_VERSION

pytestmark = pytest.mark.asyncio

GUILD = 1
HONEST, ZEALOT = 5, 6


async def test_a_members_later_vote_on_a_result_replaces_theirs(store_url: str) -> None:
    store = await open_store(store_url)
    await store.add_vote(GUILD, Vote(ZEALOT, "a goal", "sports", None, result="r1"), 10)
    first = (await store.list_votes(GUILD, 10))[0]
    await store.add_vote(GUILD, Vote(ZEALOT, "a goal", "sports", "music", result="r1"), 10)
    await store.add_vote(GUILD, Vote(HONEST, "a goal", "sports", None, result="r1"), 10)
    await store.add_vote(GUILD, Vote(ZEALOT, "a song", "music", None, result="r2"), 10)
    await store.add_vote(GUILD + 1, Vote(ZEALOT, "a goal", "sports", None, result="r1"), 10)

    votes = await store.list_votes(GUILD, 10)
    await store.close()

    assert [(v.user_id, v.text, v.suggested) for v in votes] == [
        (ZEALOT, "a song", None),
        (HONEST, "a goal", None),
        (ZEALOT, "a goal", "music"),  # replaced in place: it keeps its number
    ]
    assert votes[-1].id == first.id
    assert [v.result for v in votes] == ["r2", "r1", "r1"]


async def test_one_member_clicking_again_and_again_evicts_nobody(store_url: str) -> None:
    store = await open_store(store_url)
    await store.add_vote(GUILD, Vote(HONEST, "a goal", "sports", None, result="r0"), 20)

    for _ in range(20):
        await store.add_vote(GUILD, Vote(ZEALOT, "a goal", "sports", "music", result="r1"), 20)
    votes = await store.list_votes(GUILD, 50)
    await store.close()

    assert sorted(v.user_id for v in votes) == [HONEST, ZEALOT]


async def test_votes_from_before_the_migration_are_kept_and_never_merged(tmp_path: Path) -> None:
    from zsl.store.sqlite import MIGRATIONS

    path = tmp_path / "v2.sqlite3"
    db = sqlite3.connect(path)
    for migration in MIGRATIONS[:2]:
        db.executescript(migration)
    for text in ("first", "second"):
        db.execute(
            "INSERT INTO votes (guild_id, user_id, text, predicted, suggested, created_at)"
            " VALUES (?, ?, ?, 'sports', NULL, 0.0)",
            (GUILD, ZEALOT, text),
        )
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()

    store = await open_store(f"sqlite:///{path}")
    await store.add_vote(GUILD, Vote(ZEALOT, "third", "sports", None), 10)  # no result: added
    await store.add_vote(GUILD, Vote(ZEALOT, "fourth", "sports", None, result="r1"), 10)
    await store.add_vote(GUILD, Vote(ZEALOT, "fifth", "sports", None, result="r1"), 10)
    votes = await store.list_votes(GUILD, 10)
    await store.close()
    db = sqlite3.connect(path)
    results = db.execute("SELECT text, result FROM votes ORDER BY id").fetchall()
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()

    assert [v.text for v in votes] == ["fifth", "third", "second", "first"]
    assert results == [("first", None), ("second", None), ("third", None), ("fifth", "r1")]
    assert version == SCHEMA_VERSION  # migrated on to the latest


async def test_postgres_votes_from_before_the_migration_are_kept(pg_url: str) -> None:
    import asyncpg

    from zsl.store.postgres import MIGRATIONS

    db = await asyncpg.connect(pg_url)
    try:
        for migration in MIGRATIONS[:2]:
            await db.execute(migration)
        await db.execute("CREATE TABLE zsl_schema (version INTEGER NOT NULL)")
        await db.execute("INSERT INTO zsl_schema (version) VALUES (2)")
        for text in ("first", "second"):
            await db.execute(
                "INSERT INTO votes (guild_id, user_id, text, predicted, suggested, created_at)"
                " VALUES ($1, $2, $3, 'sports', NULL, 0.0)",
                GUILD,
                ZEALOT,
                text,
            )
    finally:
        await db.close()

    store = await open_store(pg_url)
    await store.add_vote(GUILD, Vote(ZEALOT, "third", "sports", None, result="r1"), 10)
    await store.add_vote(GUILD, Vote(ZEALOT, "fourth", "sports", "music", result="r1"), 10)
    votes = await store.list_votes(GUILD, 10)
    await store.close()

    assert [(v.text, v.suggested) for v in votes] == [
        ("fourth", "music"),
        ("second", None),
        ("first", None),
    ]
