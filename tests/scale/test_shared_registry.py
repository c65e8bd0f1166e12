"""Several processes, one PostgreSQL registry: real processes, the real server.

A class added in one process reaches the others through LISTEN/NOTIFY; when the server drops
every connection, each process reconnects, and a full reload brings back whatever it missed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from zsl import WordVectors

ROOT = Path(__file__).resolve().parents[2]
GUILD, OTHER_GUILD = 7001, 7002


class Worker:
    """A ``tests.scale.service_worker`` process; its log goes to a file."""

    def __init__(self, url: str, log: Path) -> None:
        self.log_path = log
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.scale.service_worker", url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self._read() == {"ready": True}, self.log()

    def _read(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the worker died:\n{self.log()}"
        return json.loads(line)

    def ask(self, op: str, **fields: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def classes(self, guild: int) -> list[str]:
        return list(self.ask("classes", guild=guild)["ok"])

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        """Close stdin (the worker closes the service and exits) and wait for its status."""
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            assert self.process.stdout is not None
            self.process.stdout.close()
            self._log.close()


def wait_for(predicate: Any, seconds: float = 15.0) -> float:
    """Poll until ``predicate()`` holds; the seconds it took. Fails after ``seconds``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"still not true after {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - started


def admin(url: str, sql: str, *args: Any) -> Any:
    async def run() -> Any:
        db = await asyncpg.connect(url)
        try:
            return await db.fetch(sql, *args)
        finally:
            await db.close()

    return asyncio.run(run())


@pytest.fixture
def workers(glove: WordVectors, pg_url: str, tmp_path: Path) -> Iterator[tuple[Worker, Worker]]:
    first = Worker(pg_url, tmp_path / "first.log")
    second = Worker(pg_url, tmp_path / "second.log")
    try:
        yield first, second
    finally:
        for worker in (first, second):
            worker.stop()


def test_a_class_added_in_one_process_is_used_by_the_other(
    workers: tuple[Worker, Worker],
) -> None:
    first, second = workers

    added = first.ask("add", guild=GUILD, name="sports", description="football match team goal")
    wait_for(lambda: second.classes(GUILD) == ["sports"])
    answer = second.ask("classify", guild=GUILD, text="what a goal in the last minute")

    assert added == {"ok": True}
    assert answer == {"ok": "sports"}
    assert second.classes(OTHER_GUILD) == []  # only the changed guild was touched


def test_after_the_server_drops_every_connection_both_recover_and_reload(
    workers: tuple[Worker, Worker], pg_url: str
) -> None:
    first, second = workers
    first.ask("add", guild=GUILD, name="sports", description="football match team goal")
    wait_for(lambda: second.classes(GUILD) == ["sports"])
    # A change nobody announces (as if its notification was lost while disconnected): only
    # comparing versions after a reconnect can find it. Like every write, it bumps the version.
    admin(
        pg_url,
        "WITH bumped AS (UPDATE guild_versions SET version = version + 1 WHERE guild_id = $1)"
        " INSERT INTO classes (guild_id, name_key, name, description, position, updated_at)"
        " VALUES ($1, 'music', 'music', 'song album band concert', 1, 0)",
        GUILD,
    )
    first.ask("add", guild=OTHER_GUILD, name="politics", description="election vote minister")
    wait_for(lambda: second.classes(OTHER_GUILD) == ["politics"])
    assert second.classes(GUILD) == ["sports"], "the silent insert was seen without a reload"

    killed = admin(
        pg_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    wait_for(lambda: second.classes(GUILD) == ["sports", "music"])
    wait_for(lambda: first.classes(GUILD) == ["sports", "music"])
    added = first.ask("add", guild=GUILD, name="weather", description="rain snow storm cold")
    wait_for(lambda: second.classes(GUILD) == ["sports", "music", "weather"])

    assert len(killed) >= 4, "each process had a pool connection and a listener"
    assert added == {"ok": True}, "a write right after the reconnect succeeds"
    assert "catching up on what changed meanwhile" in second.log()
    assert first.stop() == 0
    assert second.stop() == 0


def test_a_process_is_told_of_the_others_writes_but_not_of_its_own(pg_url: str) -> None:
    from zsl.records import ClassDefinition
    from zsl.store import open_store

    async def scenario() -> tuple[list[int], list[int]]:
        writer, reader = await open_store(pg_url), await open_store(pg_url)
        heard: dict[str, list[int]] = {"writer": [], "reader": []}
        told = asyncio.Event()
        for label, store in (("writer", writer), ("reader", reader)):

            async def on_change(guild_id: int, label: str = label) -> None:
                heard[label].append(guild_id)
                told.set()

            async def on_reconnect() -> None:
                pass

            await store.subscribe(on_change, on_reconnect)
        await asyncio.sleep(0.5)  # both listeners connected
        await writer.insert_class(GUILD, ClassDefinition("sports", "football goal"), 100)
        await asyncio.wait_for(told.wait(), 15)
        await asyncio.sleep(0.3)  # time for a (wrong) notification of the writer to arrive
        await writer.close()
        await reader.close()
        return heard["writer"], heard["reader"]

    own, others = asyncio.run(scenario())

    assert others == [GUILD]
    assert own == [], "a process reloaded a guild after its own write"
