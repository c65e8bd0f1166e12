"""A stalled database: commands that touch the store acknowledge before they wait for it.

PostgreSQL is frozen with SIGSTOP (every process of the cluster), so connections stay open
and queries simply get no answer, as with an overloaded or hung server. Discord still needs
an acknowledgement within 3 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ADMIN, BotProcess, add_class
from tests.e2e.fakediscord import ACK_SECONDS, DEFERRED_CHANNEL_MESSAGE, FakeDiscord
from tests.support.postgres import Cluster

pytestmark = pytest.mark.asyncio(loop_scope="module")

GUILD = 2500000000000000001


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this test's own: freezing the shared one would stall others."""
    try:
        own = Cluster()
    except FileNotFoundError as exc:
        if os.environ.get("ZSL_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here: {exc}")
        pytest.skip(str(exc))
    try:
        own.start()
        yield own
    finally:
        own.remove()


def cluster_pids(cluster: Cluster) -> list[int]:
    """The postmaster and every process it started (one per connection, and its helpers)."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # The parent pid is the 4th field, after "pid (name) state"; names may hold spaces.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == postmaster:
                    children.append(int(entry.name))
    return [postmaster, *children]


@contextlib.contextmanager
def frozen(cluster: Cluster) -> Iterator[None]:
    pids = cluster_pids(cluster)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def test_votes_is_acknowledged_while_the_database_is_stalled(
    fake: FakeDiscord, tmp_path: Path, cluster: Cluster
) -> None:
    fake.reset_connection()
    process = await BotProcess.start(fake, tmp_path, {"ZSL_DATABASE_URL": cluster.url})
    try:
        await fake.wait_ready()
        await add_class(fake, GUILD, "sports", "football match team goal")

        with frozen(cluster):
            stalled = await fake.interact(
                "votes", guild_id=GUILD, user_id=ADMIN, admin=True, wait=60.0
            )
        await asyncio.sleep(0.5)  # the cluster wakes up
        later = await fake.interact("votes", guild_id=GUILD, user_id=ADMIN, admin=True)
    finally:
        status = await process.stop()

    assert status == 0, process.log()
    assert stalled.callback_type == DEFERRED_CHANNEL_MESSAGE
    assert stalled.callback_at is not None
    assert stalled.callback_at - stalled.sent_at < ACK_SECONDS
    assert stalled.ephemeral
    assert "right now" in stalled.text, stalled.text  # the plain apology, once the store gives up
    assert "try again" in stalled.text
    assert "Nobody has given feedback" in later.text, later.text
