"""Forum auto-tags through the real bot process and the fake Discord: a new post gets the tags
whose classes fit it (or a suggestion with a button), never losing the tags a person set."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import messages
from tests.e2e.conftest import ADMIN, BotProcess, add_class
from tests.e2e.fakediscord import MANAGE_THREADS, FakeDiscord

pytestmark = pytest.mark.asyncio(loop_scope="module")

GUILD = 2800000000000000001
AUTHOR, OTHER = 3800000000000000001, 3800000000000000002
CRASH = "The app crashes with an exception error every time I open it, the window freezes"
OFF_TOPIC = "lovely sunny weather for a picnic with grandma in the park"
TAGS = ["Bug", "Question", "Feature Request"]
ENV = {"MESSAGE_CONTENT_INTENT": "true"}


async def server(fake: FakeDiscord, guild: int) -> tuple[int, int, int, int]:
    """A guild with a #help forum (tags Bug, Question, Feature Request) and two classes;
    returns the forum's id and its three tags' ids."""
    forum = guild + 20
    await fake.add_guild(guild, {guild + 21: "general"}, {forum: ("help", TAGS)})
    return forum, forum + 1, forum + 2, forum + 3


async def classes(fake: FakeDiscord, guild: int) -> None:
    await add_class(fake, guild, "bug", "crash error exception broken freeze bug")
    # Described as an admin would: "question how to help what why", a bag of function words,
    # fitted the crash report at 0.44 with the refined default table (0.38 before it).
    await add_class(
        fake,
        guild,
        "question",
        "asking how to do something, or why something works the way it does",
    )


async def autotag(fake: FakeDiscord, guild: int, **options: object) -> str:
    answer = await fake.interact("autotag", options, guild_id=guild, user_id=ADMIN, admin=True)
    return answer.text


def tags_of(fake: FakeDiscord, post: int) -> list[int] | None:
    """The post's tags after the bot's last change of them (None: it never changed them)."""
    edits = [tags for thread, tags in fake.tag_edits if thread == post]
    return edits[-1] if edits else None


async def test_a_post_about_a_crash_gets_the_bug_tag_and_an_off_topic_one_none(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    forum, bug, question, _ = await server(fake, GUILD)
    process = await BotProcess.start_ready(fake, tmp_path, ENV)
    try:
        await classes(fake, GUILD)
        answer = await autotag(fake, GUILD, forum=forum, max_tags=2)
        off_topic = await fake.new_post(GUILD, forum, "Picnic", OFF_TOPIC)
        crash = await fake.new_post(GUILD, forum, "It crashes", CRASH)
        kept = await fake.new_post(GUILD, forum, "Why?", CRASH, tags=(question,))
        await fake.wait_for(lambda: tags_of(fake, crash) and tags_of(fake, kept))
        listed = await fake.interact("watches", guild_id=GUILD, user_id=ADMIN, admin=True)
        await asyncio.sleep(0.5)
    finally:
        assert await process.stop() == 0, process.log()

    assert answer.startswith("From now on I add up to 2 tags whose classes fit each new post")
    assert '"Feature Request"' in answer  # a tag without a class, said once at setup
    assert tags_of(fake, crash) == [bug]
    assert tags_of(fake, kept) == [question, bug]  # the author's tag stays, first
    assert tags_of(fake, off_topic) is None
    assert listed.text == f"<#{forum}>: tags added, up to 2 a post"


async def test_a_suggestion_is_applied_by_the_author_only(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    guild = GUILD + 1
    forum, bug, _, _ = await server(fake, guild)
    process = await BotProcess.start_ready(fake, tmp_path, ENV)
    try:
        await classes(fake, guild)
        await autotag(fake, guild, forum=forum, mode="suggest")
        post = await fake.new_post(guild, forum, "It crashes", CRASH, author_id=AUTHOR)
        await fake.wait_for(lambda: fake.sent.get(post))
        [suggestion] = fake.sent[post]
        stranger = await fake.click(post, suggestion, guild_id=guild, user_id=OTHER)
        author = await fake.click(post, suggestion, guild_id=guild, user_id=AUTHOR)
    finally:
        assert await process.stop() == 0, process.log()

    assert suggestion["content"] == messages.tags_suggested(["Bug"])
    assert suggestion["allowed_mentions"] == {"parse": []}
    assert stranger.text == messages.TAGS_NOT_YOURS
    assert stranger.ephemeral
    assert author.callback is not None
    assert author.callback["data"]["content"] == messages.tags_applied(["Bug"])
    assert author.callback["data"]["components"] == []
    assert tags_of(fake, post) == [bug]


async def test_setup_refuses_without_manage_threads_and_survives_a_restart(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    guild = GUILD + 2
    forum, bug, _, _ = await server(fake, guild)
    await fake.deny(guild, forum, MANAGE_THREADS)
    before = await BotProcess.start_ready(fake, tmp_path, ENV)
    try:
        await classes(fake, guild)
        refused = await autotag(fake, guild, forum=forum)
        member = await fake.interact(
            "autotag", {"forum": forum}, guild_id=guild, user_id=OTHER, admin=False
        )
        fake.guilds[guild].denied.clear()
    finally:
        assert await before.stop() == 0, before.log()
    after = await BotProcess.start_ready(fake, tmp_path, ENV)
    try:
        await autotag(fake, guild, forum=forum)
    finally:
        assert await after.stop() == 0, after.log()
    again = await BotProcess.start_ready(fake, tmp_path, ENV)
    try:
        post = await fake.new_post(guild, forum, "It crashes", CRASH)
        await fake.wait_for(lambda: tags_of(fake, post))
    finally:
        assert await again.stop() == 0, again.log()

    assert refused == messages.watch_lacks([(f"<#{forum}>", "manage_threads")])
    assert member.text == messages.MISSING_PERMISSION
    assert tags_of(fake, post) == [bug]


async def test_the_tags_without_a_class_become_classes_at_one_click(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    guild = GUILD + 3
    forum, _, _, request = await server(fake, guild)
    process = await BotProcess.start_ready(fake, tmp_path, ENV)
    try:
        await add_class(fake, guild, "bug", "crash error exception broken freeze bug")
        answer = await fake.interact(
            "autotag", {"forum": forum}, guild_id=guild, user_id=ADMIN, admin=True
        )
        member = await fake.press(answer, 2, guild_id=guild, user_id=OTHER)
        created = await fake.press(answer, 2, guild_id=guild, user_id=ADMIN, admin=True)
        again = await fake.press(answer, 2, guild_id=guild, user_id=ADMIN, admin=True)
        listed = await fake.interact("classes", guild_id=guild, user_id=ADMIN, admin=True)
        post = await fake.new_post(
            guild, forum, "Feature request", "A request for a new feature: dark mode"
        )
        await fake.wait_for(lambda: tags_of(fake, post))
    finally:
        assert await process.stop() == 0, process.log()

    assert '"Question", "Feature Request"' in answer.text
    assert member.text == messages.MISSING_PERMISSION
    assert created.text == messages.tag_classes_created(["Question", "Feature Request"])
    assert again.text == messages.TAG_CLASSES_EXIST
    assert "**Feature Request**" in listed.text
    assert tags_of(fake, post) == [request]
