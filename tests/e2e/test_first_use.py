"""A guild whose first use is slow is still acknowledged within Discord's 3 seconds.

The service embeds a guild on its first use after a start. A guild with many classes that
each learned long examples takes several seconds to embed; the fake Discord refuses an answer
that comes later than 3 s, as Discord does, so the bot has to defer and follow up.
"""

from __future__ import annotations

import random
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import ROOT, BotProcess
from tests.e2e.fakediscord import (
    ACK_SECONDS,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    EPHEMERAL,
    Exchange,
    FakeDiscord,
)
from zsl.records import ClassDefinition
from zsl.store import open_store

pytestmark = pytest.mark.asyncio(loop_scope="module")

GUILD = 2400000000000000001
MEMBER = 3400000000000000001
CLASSES = 300
EXAMPLES = 20
EXAMPLE_LENGTH = 2000
"""300 classes of 20 examples of 2,000 characters: 5-10 s to embed on this project's machines
(2 cores); the test checks that it really is slower than Discord's window."""


def chat_words() -> list[str]:
    """Real words, from the hand-written chat data set, so that every example embeds."""
    lines = (ROOT / "tests/data/chat_topics/test.tsv").read_text(encoding="utf-8").splitlines()
    words = {w for line in lines for w in re.findall(r"[a-z]{3,}", line.split("\t", 1)[-1])}
    return sorted(words)


async def store_a_big_guild(database: Path) -> None:
    """Write the classes straight into the registry, as a long-used guild would have them."""
    rng = random.Random(0)
    words = chat_words()
    store = await open_store(f"sqlite:///{database}")
    try:
        for number in range(CLASSES):
            name = f"topic {number}"
            description = " ".join(rng.sample(words, 8))
            await store.insert_class(GUILD, ClassDefinition(name, description), CLASSES)
            for _ in range(EXAMPLES):
                example: list[str] = []
                while sum(len(w) + 1 for w in example) < EXAMPLE_LENGTH - 20:
                    example.append(rng.choice(words))
                await store.add_example(GUILD, name, " ".join(example), EXAMPLES)
    finally:
        await store.close()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    """A registry file in memory where the machine has a tmpfs: 6,000 durable writes to fill."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path / "zsl.sqlite3"
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="zsl-e2e-") as folder:
        yield Path(folder) / "zsl.sqlite3"


async def start_bot(fake: FakeDiscord, workdir: Path, database: Path) -> BotProcess:
    return await BotProcess.start_ready(
        fake,
        workdir,
        {
            "ZSL_DATABASE_URL": f"sqlite:///{database}",
            "ZSL_MAX_CLASSES": str(CLASSES),
            "CLASSIFY_COOLDOWN_SECONDS": "0",
        },
    )


def assert_deferred_then_answered(first: Exchange) -> None:
    assert first.followup_at is not None
    assert first.followup_at - first.sent_at > ACK_SECONDS, (
        "the first use was not slower than Discord's window; store a bigger guild"
    )
    assert first.callback_type == DEFERRED_CHANNEL_MESSAGE
    assert first.callback_at is not None
    assert first.callback_at - first.sent_at < ACK_SECONDS
    assert not first.ephemeral
    assert "**topic " in first.message["embeds"][0]["description"]
    assert first.message["components"], "the feedback controls come with the follow-up"


async def test_a_slow_first_use_is_deferred_then_answered(
    fake: FakeDiscord, tmp_path: Path, database: Path
) -> None:
    await store_a_big_guild(database)
    late_before = len(fake.late_callbacks)

    process = await start_bot(fake, tmp_path, database)
    try:
        by_command = await fake.interact(
            "classify",
            {"text": "anyone up for ranked tonight"},
            guild_id=GUILD,
            user_id=MEMBER,
            wait=60.0,
        )
        fast = await fake.interact(
            "classify", {"text": "who wants to raid tonight"}, guild_id=GUILD, user_id=MEMBER
        )
    finally:
        first_status = await process.stop()
    process = await start_bot(fake, tmp_path, database)  # the guild is unbuilt again
    try:
        message = fake.message_payload("who wants to raid tonight", guild_id=GUILD)
        by_menu = await fake.interact(
            "Classify message",
            guild_id=GUILD,
            user_id=MEMBER,
            target_message=message,
            wait=60.0,
        )
    finally:
        second_status = await process.stop()

    process = await start_bot(fake, tmp_path, database)  # unbuilt again; a text it refuses
    try:
        refused = await fake.interact(
            "classify", {"text": "qxzvvb wqqxjk"}, guild_id=GUILD, user_id=MEMBER, wait=60.0
        )
    finally:
        third_status = await process.stop()

    assert first_status == 0, process.log()
    assert second_status == 0, process.log()
    assert third_status == 0, process.log()
    # A refusal after a public defer: the "thinking" message goes, the sentence is private.
    assert refused.callback_type == DEFERRED_CHANNEL_MESSAGE
    assert refused.deleted_original
    assert int(refused.message.get("flags") or 0) & EPHEMERAL
    assert "cannot be classified" in refused.text
    assert_deferred_then_answered(by_command)
    assert_deferred_then_answered(by_menu)
    assert len(fake.late_callbacks) == late_before
    assert fast.callback_type == CHANNEL_MESSAGE  # a fast answer stays one direct reply
    assert fast.followups == []


async def test_the_fake_refuses_an_answer_after_three_seconds(fake: FakeDiscord) -> None:
    """The honesty the test above relies on: a late first answer gets Discord's 404."""
    token = "interaction-token-late"
    fake.exchanges[token] = Exchange(sent_at=time.monotonic() - ACK_SECONDS - 0.1)

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.api_base}/interactions/1/{token}/callback",
            json={"type": CHANNEL_MESSAGE, "data": {"content": "too late"}},
        ) as response,
    ):
        body = await response.json()

    assert response.status == 404
    assert body == {"code": 10062, "message": "Unknown interaction"}
    assert fake.late_callbacks[-1] is fake.exchanges[token]
