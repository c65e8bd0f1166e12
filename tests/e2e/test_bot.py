"""The real ``python -m bot`` against the fake Discord: one bot process for this module."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import zsl
from bot import messages
from tests.e2e.conftest import ADMIN, BotProcess, add_class
from tests.e2e.fakediscord import (
    APPLICATION_ID,
    AUTOCOMPLETE_RESULT,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    TOKEN,
    FakeDiscord,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

GUILD = 2100000000000000001
OTHER_GUILD = 2100000000000000002
MEMBER = 3100000000000000002
CHAT_INPUT, MESSAGE_COMMAND = 1, 3
NAME = re.compile(r"^[-_a-z0-9]{1,32}$")
NO_PINGS = {"parse": []}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(
    fake: FakeDiscord, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BotProcess]:
    workdir: Path = tmp_path_factory.mktemp("bot")
    # A long cooldown so the cooldown test sees it; every other test uses its own user.
    process = await BotProcess.start_ready(fake, workdir, {"CLASSIFY_COOLDOWN_SECONDS": "30"})
    yield process
    status = await process.stop()
    assert status == 0, process.log()


user_ids = iter(range(3200000000000000000, 3300000000000000000))


def new_user() -> int:
    """A member never seen before, so no cooldown carries over between tests."""
    return next(user_ids)


class TestLoginAndSync:
    async def test_logs_in_with_the_token_and_only_unprivileged_intents(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        identify = fake.identifies[-1]

        assert identify["token"] == TOKEN
        privileged = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message content
        assert identify["intents"] & privileged == 0
        assert identify["shard"] == [0, 1]

    async def test_syncs_global_commands_once_on_a_fresh_store(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        syncs = [r for r in fake.requests if r.method == "PUT" and r.path.endswith("/commands")]

        assert [r.path for r in syncs] == [f"/applications/{APPLICATION_ID}/commands"]
        names = {c["name"] for c in fake.commands[None]}
        assert names == {
            "classify",
            "Classify message",
            "addclass",
            "editclass",
            "removeclass",
            "classes",
            "threshold",
            "addexample",
            "examples",
            "removeexample",
            "votes",
            "help",
            "exportclasses",
            "importclasses",
            "watch",
            "watches",
            "autotag",
        }

    async def test_synced_commands_obey_discord_limits(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        commands = fake.commands[None]

        assert len(commands) <= 100
        for command in commands:
            if command.get("type", CHAT_INPUT) == CHAT_INPUT:
                assert NAME.match(command["name"]), command["name"]
                assert 1 <= len(command["description"]) <= 100, command
                assert not command["description"].endswith("\u2026"), command
                options = command.get("options", [])
                assert len(options) <= 25
                for option in options:
                    assert NAME.match(option["name"]), option
                    assert 1 <= len(option["description"]) <= 100, option
                    # discord.py silently shortens long descriptions with an ellipsis.
                    assert not option["description"].endswith("\u2026"), option
                required = [o.get("required", False) for o in options]
                assert required == sorted(required, reverse=True), "required options come first"
            else:
                assert 1 <= len(command["name"]) <= 32
                assert command["description"] == ""
            assert command["contexts"] == [0], "guild only"

    async def test_admin_commands_carry_the_manage_server_hint(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        permissions = {c["name"]: c["default_member_permissions"] for c in fake.commands[None]}

        manage_guild = str(1 << 5)
        admin = ("addclass", "editclass", "removeclass", "threshold", "addexample", "examples")
        for name in (*admin, "removeexample", "votes"):
            assert str(permissions[name]) == manage_guild, name
        assert permissions["classify"] is None
        assert permissions["help"] is None
        assert permissions["Classify message"] is None


class TestClassify:
    async def test_added_class_classifies_and_other_guild_is_isolated(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        await add_class(fake, GUILD, "sports", "football match team goal league")
        await add_class(fake, GUILD, "music", "song album band concert guitar")

        here = await fake.interact(
            "classify",
            {"text": "The team scored a late goal to win the league match"},
            guild_id=GUILD,
            user_id=new_user(),
        )
        elsewhere = await fake.interact(
            "classify", {"text": "The team scored a goal"}, guild_id=OTHER_GUILD, user_id=new_user()
        )

        assert here.callback_type == CHANNEL_MESSAGE
        assert not here.ephemeral
        ranked = [
            line
            for line in here.message["embeds"][0]["description"].splitlines()
            if line.startswith("**")
        ]
        assert ranked[0].startswith("**sports**")
        assert "\u2588" in ranked[0]
        assert elsewhere.ephemeral
        assert "This server has no classes yet" in elsewhere.text

    async def test_private_classify_is_ephemeral(self, fake: FakeDiscord, bot: BotProcess) -> None:
        exchange = await fake.interact(
            "classify",
            {"text": "a concert with a great band", "private": True},
            guild_id=GUILD,
            user_id=new_user(),
        )

        assert exchange.ephemeral
        assert "**music**" in exchange.text

    async def test_reply_comes_within_three_seconds(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        exchange = await fake.interact(
            "classify", {"text": "new album from the band"}, guild_id=GUILD, user_id=new_user()
        )

        assert exchange.callback_at is not None
        assert exchange.callback_at - exchange.sent_at < 3.0
        assert exchange.callback_query.get("with_response") in ("1", "true", "True")

    async def test_write_is_deferred_then_answered_within_three_seconds(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        exchange = await fake.interact(
            "addclass",
            {"name": "politics", "description": "election government vote minister"},
            guild_id=GUILD,
            user_id=ADMIN,
            admin=True,
        )

        assert exchange.callback_type == DEFERRED_CHANNEL_MESSAGE
        assert exchange.ephemeral
        assert exchange.followup_at is not None
        assert exchange.followup_at - exchange.sent_at < 3.0
        assert exchange.message["allowed_mentions"] == NO_PINGS

    async def test_context_menu_classifies_the_message(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        message = fake.message_payload("What a goal by the team in the match!", guild_id=GUILD)

        exchange = await fake.interact(
            "Classify message", guild_id=GUILD, user_id=new_user(), target_message=message
        )

        assert exchange.callback_type == CHANNEL_MESSAGE
        description = exchange.message["embeds"][0]["description"]
        assert description.startswith("> What a goal by the team in the match!")
        assert "**sports**" in description

    async def test_context_menu_on_a_message_without_text_is_refused(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        message = fake.message_payload("", guild_id=GUILD)

        exchange = await fake.interact(
            "Classify message", guild_id=GUILD, user_id=new_user(), target_message=message
        )

        assert exchange.ephemeral
        assert "no text to classify" in exchange.text

    async def test_context_menu_on_a_long_message_classifies_its_first_part(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        content = "The striker scored a late goal to win the football match. " * 50
        message = fake.message_payload(content, guild_id=GUILD)

        exchange = await fake.interact(
            "Classify message", guild_id=GUILD, user_id=new_user(), target_message=message
        )

        assert len(content) == 2900  # over the 2,000-character default limit
        assert not exchange.ephemeral
        embed = exchange.message["embeds"][0]
        assert "**sports**" in embed["description"]
        note = re.match(
            r"Only the first ([\d,]+) characters were classified\.", embed["footer"]["text"]
        )
        assert note is not None, embed["footer"]
        kept = int(note.group(1).replace(",", ""))
        assert 1900 < kept <= 2000
        assert content[kept] == " "  # cut where a word ends
        assert "Shorten it" not in exchange.text

    async def test_second_classify_within_the_cooldown_is_refused(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        user = new_user()
        first = await fake.interact("classify", {"text": "a song"}, guild_id=GUILD, user_id=user)

        second = await fake.interact("classify", {"text": "a song"}, guild_id=GUILD, user_id=user)

        assert not first.ephemeral
        assert second.ephemeral
        assert "Try again in" in second.text

    async def test_unknown_words_are_refused_with_the_words(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        exchange = await fake.interact(
            "classify", {"text": "qwzxv vbnmq"}, guild_id=GUILD, user_id=new_user()
        )

        assert exchange.ephemeral
        assert "qwzxv" in exchange.text


class TestHelp:
    async def test_help_lists_the_admin_commands_only_to_admins(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        member = await fake.interact("help", guild_id=GUILD, user_id=new_user())
        admin = await fake.interact("help", guild_id=GUILD, user_id=ADMIN, admin=True)

        assert member.ephemeral
        assert admin.ephemeral
        assert "/classify" in member.text
        assert "Classify message" in member.text
        assert "/addclass" not in member.text
        assert "/classify" in admin.text
        assert "/addclass" in admin.text
        assert "/votes" in admin.text


class TestMentions:
    async def test_everyone_in_a_class_name_and_text_pings_nobody(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        guild = fake.next_id()
        added = await fake.interact(
            "addclass",
            {"name": "@everyone news", "description": "news report announcement @here"},
            guild_id=guild,
            user_id=ADMIN,
            admin=True,
        )

        classified = await fake.interact(
            "classify",
            {"text": "@everyone big news announcement <@123456789012345678>"},
            guild_id=guild,
            user_id=new_user(),
        )

        for exchange in (added, classified):
            assert exchange.message["allowed_mentions"] == NO_PINGS
            assert "@everyone" not in exchange.text  # shown as @\u200beveryone
            assert "<@123456789012345678>" not in exchange.text
        assert "@\u200beveryone news" in classified.text


class TestRefusals:
    async def test_member_without_manage_server_cannot_add_a_class(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        exchange = await fake.interact(
            "addclass",
            {"name": "memes", "description": "funny joke meme"},
            guild_id=GUILD,
            user_id=MEMBER,
            admin=False,
        )
        listing = await fake.interact("classes", guild_id=GUILD, user_id=MEMBER)

        assert exchange.callback_type == CHANNEL_MESSAGE
        assert exchange.ephemeral
        assert "Manage Server" in exchange.text
        assert exchange.message["allowed_mentions"] == NO_PINGS
        assert "memes" not in listing.text

    async def test_command_in_a_dm_is_politely_refused(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        exchange = await fake.interact(
            "classify", {"text": "a goal"}, guild_id=None, user_id=new_user()
        )

        assert exchange.callback_type == CHANNEL_MESSAGE
        assert exchange.ephemeral
        assert "only in a server" in exchange.text

    async def test_duplicate_class_is_refused_and_nothing_changes(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        exchange = await fake.interact(
            "addclass",
            {"name": "SPORTS", "description": "tennis"},
            guild_id=GUILD,
            user_id=ADMIN,
            admin=True,
        )
        listing = await fake.interact("classes", guild_id=GUILD, user_id=ADMIN)

        assert exchange.ephemeral
        assert "already exists" in exchange.text
        assert "tennis" not in listing.text


class TestAdminFlow:
    async def test_autocomplete_offers_the_guilds_classes(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        guild = fake.next_id()
        for name in ("sports", "music", "esports"):
            await add_class(fake, guild, name, "game")

        exchange = await fake.interact(
            "removeclass",
            {"name": "sp"},
            guild_id=guild,
            user_id=ADMIN,
            admin=True,
            focused="name",
        )
        other = await fake.interact(
            "removeclass",
            {"name": ""},
            guild_id=fake.next_id(),
            user_id=ADMIN,
            admin=True,
            focused="name",
        )

        assert exchange.callback_type == AUTOCOMPLETE_RESULT
        choices = exchange.callback["data"]["choices"]  # type: ignore[index]
        assert [c["value"] for c in choices] == ["sports", "esports"]
        assert other.callback["data"]["choices"] == []  # type: ignore[index]

    async def test_edit_remove_and_list(self, fake: FakeDiscord, bot: BotProcess) -> None:
        guild = fake.next_id()
        await add_class(fake, guild, "sports", "football match")
        await add_class(fake, guild, "music", "song album")

        edited = await fake.interact(
            "editclass",
            {"name": "sports", "new_name": "football", "description": "soccer goal"},
            guild_id=guild,
            user_id=ADMIN,
            admin=True,
        )
        removed = await fake.interact(
            "removeclass", {"name": "MUSIC"}, guild_id=guild, user_id=ADMIN, admin=True
        )
        listing = await fake.interact("classes", guild_id=guild, user_id=new_user())

        assert 'Renamed the class "sports" to "football"' in edited.text
        assert 'Removed the class "music"' in removed.text
        assert listing.message["embeds"][0]["description"] == "**football**: soccer goal"

    async def test_threshold_is_set_shown_and_reset(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        guild = fake.next_id()

        changed = await fake.interact(
            "threshold", {"value": 0.8}, guild_id=guild, user_id=ADMIN, admin=True
        )
        shown = await fake.interact("threshold", guild_id=guild, user_id=ADMIN, admin=True)
        reset = await fake.interact(
            "threshold", {"reset": True}, guild_id=guild, user_id=ADMIN, admin=True
        )
        refused = await fake.interact(
            "threshold", {"value": 0.1}, guild_id=guild, user_id=MEMBER, admin=False
        )

        assert "at least 80% sure" in changed.text
        assert "at least 80% sure" in shown.text
        assert f"at least {zsl.DEFAULT_THRESHOLD:.0%} sure" in reset.text
        assert "Manage Server" in refused.text

    async def test_export_hands_admins_the_classes_as_a_json_file(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        guild = fake.next_id()
        await add_class(fake, guild, "sports", "football match")
        await add_class(fake, guild, "@everyone *news*", "report")
        await fake.interact("threshold", {"value": 0.7}, guild_id=guild, user_id=ADMIN, admin=True)
        await fake.interact(
            "addexample",
            {"name": "sports", "text": "what a goal"},
            guild_id=guild,
            user_id=ADMIN,
            admin=True,
        )

        exported = await fake.interact("exportclasses", guild_id=guild, user_id=ADMIN, admin=True)
        refused = await fake.interact("exportclasses", guild_id=guild, user_id=new_user())

        assert exported.ephemeral
        assert exported.message["allowed_mentions"] == NO_PINGS
        [document] = exported.message["files"]
        assert document["filename"] == "classes.json"
        assert json.loads(document["content"]) == {
            "threshold": 0.7,
            "classes": [
                {
                    "name": "sports",
                    "description": "football match",
                    "emoji": None,
                    "examples": ["what a goal"],
                },
                {
                    "name": "@everyone *news*",
                    "description": "report",
                    "emoji": None,
                    "examples": [],
                },
            ],
        }
        assert "2 classes" in exported.text
        assert "Manage Server" in refused.text
        assert "files" not in refused.message

    async def test_import_reads_the_attached_export_whole_or_not_at_all(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        source, target = fake.next_id(), fake.next_id()
        await add_class(fake, source, "sports", "football match")
        await add_class(fake, source, "music", "song album")
        exported = await fake.interact("exportclasses", guild_id=source, user_id=ADMIN, admin=True)
        document = exported.message["files"][0]["content"].encode()
        await add_class(fake, target, "Music", "band")

        def importing(content: bytes, **kwargs: Any) -> Any:
            return fake.interact(
                "importclasses",
                files={"file": ("classes.json", content)},
                guild_id=target,
                user_id=kwargs.get("user_id", ADMIN),
                admin=kwargs.get("admin", True),
            )

        duplicate = await importing(document)
        not_json = await importing(b"\xff\xfe not text")
        member = await importing(document, user_id=new_user(), admin=False)
        await fake.interact(
            "removeclass", {"name": "music"}, guild_id=target, user_id=ADMIN, admin=True
        )
        imported = await importing(document)
        listed = await fake.interact("classes", guild_id=target, user_id=ADMIN, admin=True)

        assert duplicate.ephemeral
        assert duplicate.text.startswith("Nothing was imported. Class 2 of the file ('music')")
        assert not_json.text == messages.IMPORT_NOT_TEXT
        assert "Manage Server" in member.text
        assert imported.text == "Imported 2 classes. This server now has 2 classes."
        assert [line.split()[0] for line in listed.text.splitlines()[1:3]] == [
            "**sports**:",
            "**music**:",
        ]


BUTTON, SELECT = 2, 3
FEEDBACK_GUILD = 2100000000000000003


class TestFeedback:
    async def _classified(self, fake: FakeDiscord, text: str) -> Any:
        return await fake.interact(
            "classify", {"text": text}, guild_id=FEEDBACK_GUILD, user_id=new_user()
        )

    async def test_result_carries_right_and_wrong_controls(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        await add_class(fake, FEEDBACK_GUILD, "sports", "football match team goal league")
        await add_class(fake, FEEDBACK_GUILD, "music", "song album band concert guitar")

        result = await self._classified(fake, "the band played their new song")

        rows = result.message["components"]
        kinds = [c["type"] for row in rows for c in row["components"]]
        assert kinds == [BUTTON, SELECT]
        select = rows[1]["components"][0]
        assert [o["value"] for o in select["options"]] == ["sports"]  # the other classes

    async def test_an_admins_verdict_teaches_the_class(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        text = "the striker scored a late goal to win the football match"
        result = await self._classified(fake, text)

        right = await fake.press(result, BUTTON, guild_id=FEEDBACK_GUILD, user_id=ADMIN, admin=True)
        listed = await fake.interact(
            "examples", {"name": "sports"}, guild_id=FEEDBACK_GUILD, user_id=ADMIN, admin=True
        )

        assert right.ephemeral
        assert 'Thanks! "sports" learned from this text' in right.text
        assert text in listed.text

    async def test_a_members_correction_is_kept_as_a_vote_for_admins(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        member = new_user()
        result = await self._classified(fake, "what a night at the stadium")

        voted = await fake.press(
            result, SELECT, guild_id=FEEDBACK_GUILD, user_id=member, values=["music"]
        )
        review = await fake.interact(
            "votes", {}, guild_id=FEEDBACK_GUILD, user_id=ADMIN, admin=True
        )
        refused = await fake.interact("votes", {}, guild_id=FEEDBACK_GUILD, user_id=member)
        examples = await fake.interact(
            "examples", {"name": "music"}, guild_id=FEEDBACK_GUILD, user_id=ADMIN, admin=True
        )

        assert "Your feedback is kept" in voted.text
        assert f"<@{member}>" in review.text
        assert "sports \u2192 music" in review.text
        assert review.message["allowed_mentions"] == NO_PINGS
        assert "Manage Server" in refused.text
        assert "stadium" not in examples.text  # a member's vote teaches nothing by itself

    async def test_examples_can_be_added_listed_and_removed_by_admins(
        self, fake: FakeDiscord, bot: BotProcess
    ) -> None:
        added = await fake.interact(
            "addexample",
            {"name": "music", "text": "the drummer missed a beat"},
            guild_id=FEEDBACK_GUILD,
            user_id=ADMIN,
            admin=True,
        )
        refused = await fake.interact(
            "addexample",
            {"name": "music", "text": "sneaky"},
            guild_id=FEEDBACK_GUILD,
            user_id=new_user(),
        )
        removed = await fake.interact(
            "removeexample",
            {"name": "music", "number": 1},
            guild_id=FEEDBACK_GUILD,
            user_id=ADMIN,
            admin=True,
        )
        listed = await fake.interact(
            "examples", {"name": "music"}, guild_id=FEEDBACK_GUILD, user_id=ADMIN, admin=True
        )

        assert "learned from this text" in added.text
        assert "Manage Server" in refused.text
        assert "forgot the example: the drummer missed a beat" in removed.text
        assert "drummer" not in listed.text
        assert "no examples yet" in listed.text
