"""Real outages for the tests: a PostgreSQL cluster that can be stopped and started again or
frozen, a read-only SQLite file, a full disk, and a SQLite file with garbled pages."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import Cluster
from zsl.records import ClassDefinition, Vote
from zsl.store import open_store


def own_cluster() -> Cluster:
    """A cluster of the test's own (the shared test server must stay up); not started yet."""
    try:
        return Cluster()
    except FileNotFoundError as exc:
        if os.environ.get("ZSL_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here: {exc}")
        pytest.skip(str(exc))


@contextlib.contextmanager
def frozen(cluster: Cluster) -> Iterator[None]:
    """Every process of ``cluster`` stopped with SIGSTOP, then continued: a database that stalls
    (connections stay open, nothing answers), as under a hung disk or a paused container."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, signal.SIGSTOP)  # first: a stopped postmaster starts no new backends
    stopped = [postmaster]
    try:
        for child in _children(postmaster):
            os.kill(child, signal.SIGSTOP)
            stopped.append(child)
        yield
    finally:
        for pid in reversed(stopped):
            os.kill(pid, signal.SIGCONT)


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:
            continue  # gone meanwhile
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(entry))
    return found


@contextlib.contextmanager
def read_only(*paths: Path) -> Iterator[str]:
    """Make files read-only for real, even for root (which ignores permission bits): the
    immutable attribute. Yields how it was done."""
    existing = [p for p in paths if p.exists()]
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in existing}
        for p in existing:
            p.chmod(0o444)
        try:
            yield "chmod"
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    done = subprocess.run(["chattr", "+i", *map(str, existing)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot make a file read-only as root here (chattr: {done.stderr!r})")
    try:
        yield "chattr +i"
    finally:
        subprocess.run(["chattr", "-i", *map(str, existing)], check=True)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "2m") -> Iterator[bool]:
    """A tmpfs of ``size`` mounted at ``folder``; yields False if mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    try:
        yield done.returncode == 0
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_disk(filler: Path) -> int:
    """Write ``filler`` until the disk is full; return the bytes written."""
    written = 0
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            written += os.write(fd, b"\0" * 4096)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return written


async def fill_registry(url: str) -> None:
    """Classes, examples, thresholds and votes for 29 guilds, through the store."""
    store = await open_store(url)
    try:
        for guild_id in range(1, 30):
            await store.insert_class(guild_id, ClassDefinition("sports", "football match"), 100)
            await store.add_example(guild_id, "sports", "what a goal", 5)
            await store.set_threshold(guild_id, 0.5)
            await store.add_vote(guild_id, Vote(5, "a late goal", "sports", None), 10)
    finally:
        await store.close()


def garbled_copy(source: Path, target: Path) -> Path:
    """``target``: a copy of the SQLite file ``source`` with its header intact and a few bytes
    of its pages zeroed, so that SQLite reads it without complaint yet a guild id reads back
    NULL (damage that only the registry's own reading can notice)."""
    data = source.read_bytes()
    for seed in range(5000):
        rnd = random.Random(seed)
        garbled = bytearray(data)
        for _ in range(4):
            garbled[rnd.randrange(100, len(garbled))] = 0
        target.write_bytes(garbled)
        if _reads_a_null_guild(target):
            return target
    raise AssertionError(f"no garbling of {source} reads back a NULL guild id")


def _reads_a_null_guild(path: Path) -> bool:
    db = sqlite3.connect(path)
    try:
        return any(
            row[0] is None
            for table in ("classes", "examples", "guild_settings")
            for row in db.execute(f"SELECT guild_id FROM {table}")
        )
    except sqlite3.Error:
        return False
    finally:
        db.close()
