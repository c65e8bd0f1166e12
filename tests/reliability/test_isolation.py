"""Isolation and permissions, through the real bot process and the fake Discord.

Two guilds: nothing one guild does (any command, any autocomplete, the context menu, the
feedback buttons) reads, changes or removes the other's classes. Admin commands refuse members
without Manage Server although the fake, like a modified client, ignores the permission hint.
The cooldown holds under a burst. The token never shows up in logs or replies; ``.env`` stays
out of git and the image, and the image runs as a non-root user.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.conftest import ROOT, BotProcess, add_class
from tests.e2e.fakediscord import AUTOCOMPLETE_RESULT, TOKEN, FakeDiscord

ASYNC = pytest.mark.asyncio(loop_scope="module")

GUILD_A = 2800000000000000001
GUILD_B = 2800000000000000002
ADMIN_A = 3800000000000000001
ADMIN_B = 3800000000000000002
MEMBER = 3800000000000000003
SECRET = "alpha secret"
SECRET_WORDS = "football match team goal"
STRING, INTEGER, BOOLEAN, CHANNEL, ATTACHMENT, NUMBER = 3, 4, 5, 7, 11, 10
BUTTON, SELECT = 2, 3

_users = iter(range(3900000000000000000, 3999999999999999999))


def new_user() -> int:
    return next(_users)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(
    fake: FakeDiscord, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BotProcess]:
    workdir: Path = tmp_path_factory.mktemp("isolation")
    process = await BotProcess.start_ready(
        fake, workdir, {"CLASSIFY_COOLDOWN_SECONDS": "30", "LOG_LEVEL": "DEBUG"}
    )
    for guild, admin, name, description in (
        (GUILD_A, ADMIN_A, SECRET, SECRET_WORDS),
        (GUILD_A, ADMIN_A, "cooking", "recipe bake oven kitchen"),
        (GUILD_B, ADMIN_B, "bravo", "song album band concert"),
    ):
        await add_class(fake, guild, name, description, admin)
    taught = await fake.interact(
        "addexample",
        {"name": SECRET, "text": "the striker scored twice"},
        guild_id=GUILD_A,
        user_id=ADMIN_A,
        admin=True,
    )
    assert "striker" not in taught.text or "example" in taught.text.lower()
    yield process
    status = await process.stop()
    assert status == 0, process.log()


def chat_commands(fake: FakeDiscord) -> list[dict[str, Any]]:
    return [c for c in fake.commands[None] if c.get("type", 1) == 1]


def fill(command: dict[str, Any], name: str) -> dict[str, Any]:
    """A value for every option: the class name for ``name``, something plausible elsewhere."""
    values: dict[str, Any] = {}
    for option in command.get("options", []):
        kind = option["type"]
        if option["name"] == "name":
            values["name"] = name
        elif kind == STRING:
            values[option["name"]] = "hacked words"
        elif kind == INTEGER:
            values[option["name"]] = 1
        elif kind == NUMBER:
            values[option["name"]] = 0.9
        elif kind == BOOLEAN:
            values[option["name"]] = True
        elif kind == CHANNEL:
            values[option["name"]] = 1
        elif kind == ATTACHMENT:
            values[option["name"]] = ("classes.json", b'{"classes": [{"name": "hacked"}]}')
    return values


async def guild_a_state(fake: FakeDiscord) -> list[str]:
    """What guild A's admin sees of A: classes, examples, threshold, votes."""
    views = []
    for command, options in (
        ("classes", {}),
        ("examples", {"name": SECRET}),
        ("threshold", {}),
        ("votes", {}),
    ):
        exchange = await fake.interact(
            command, options, guild_id=GUILD_A, user_id=ADMIN_A, admin=True
        )
        views.append(exchange.text)
    return views


@ASYNC
async def test_another_guild_sees_none_of_the_classes(fake: FakeDiscord, bot: BotProcess) -> None:
    listing = await fake.interact("classes", guild_id=GUILD_B, user_id=new_user())
    classified = await fake.interact(
        "classify",
        {"text": "what a goal in the football match", "top": 10},
        guild_id=GUILD_B,
        user_id=new_user(),
    )
    message_from_a = fake.message_payload("a late goal won the football match", guild_id=GUILD_A)
    menu = await fake.interact(
        "Classify message", guild_id=GUILD_B, user_id=new_user(), target_message=message_from_a
    )

    for exchange in (listing, classified, menu):
        assert "bravo" in exchange.text
        assert SECRET not in exchange.text
        assert "cooking" not in exchange.text
        assert "striker" not in exchange.text
        components = json.dumps(exchange.message.get("components") or [])
        assert SECRET not in components
        assert "cooking" not in components


@ASYNC
async def test_no_autocomplete_offers_another_guilds_classes(
    fake: FakeDiscord, bot: BotProcess
) -> None:
    asked = 0
    for command in chat_commands(fake):
        for option in command.get("options", []):
            if not option.get("autocomplete"):
                continue
            for typed in ("", "alpha", "SECRET", "o"):
                exchange = await fake.interact(
                    command["name"],
                    {option["name"]: typed},
                    guild_id=GUILD_B,
                    user_id=ADMIN_B,
                    admin=True,
                    focused=option["name"],
                )
                assert exchange.callback_type == AUTOCOMPLETE_RESULT
                offered = [c["value"] for c in exchange.callback["data"]["choices"]]  # type: ignore[index]
                assert set(offered) <= {"bravo"}, (command["name"], typed, offered)
                asked += 1
    own = await fake.interact(
        "removeclass", {"name": ""}, guild_id=GUILD_A, user_id=ADMIN_A, admin=True, focused="name"
    )

    assert asked >= 4 * 2, "editclass and removeclass at least offer class names"
    assert {c["value"] for c in own.callback["data"]["choices"]} == {SECRET, "cooking"}  # type: ignore[index]


@ASYNC
async def test_no_command_of_another_guild_changes_or_reveals_the_classes(
    fake: FakeDiscord, bot: BotProcess
) -> None:
    before = await guild_a_state(fake)
    tried = []

    for command in chat_commands(fake):
        # /addclass may of course create a class of the same name in B: that is B's own.
        if command["name"] == "addclass":
            continue
        if not any(o["name"] == "name" for o in command.get("options", [])):
            continue
        for name in (SECRET, SECRET.upper(), f" {SECRET}\u200b "):
            exchange = await fake.interact(
                command["name"],
                fill(command, name),
                guild_id=GUILD_B,
                user_id=ADMIN_B,
                admin=True,
            )
            tried.append(command["name"])
            assert SECRET_WORDS not in exchange.text, (command["name"], exchange.text)
            assert "striker" not in exchange.text
    threshold = await fake.interact(
        "threshold", {"value": 0.95}, guild_id=GUILD_B, user_id=ADMIN_B, admin=True
    )

    assert {"editclass", "removeclass", "addexample", "removeexample", "examples"} <= set(tried)
    assert "95%" in threshold.text
    assert await guild_a_state(fake) == before


@ASYNC
async def test_feedback_buttons_pressed_from_another_guild_change_nothing(
    fake: FakeDiscord, bot: BotProcess
) -> None:
    result = await fake.interact(
        "classify", {"text": "the team scored a goal"}, guild_id=GUILD_A, user_id=new_user()
    )
    before = await guild_a_state(fake)

    pressed = []
    for component, values in ((BUTTON, None), (SELECT, ["cooking"])):
        if any(
            c["type"] == component
            for row in result.message.get("components") or []
            for c in row.get("components", [])
        ):
            pressed.append(
                await fake.press(
                    result, component, guild_id=GUILD_B, user_id=ADMIN_B, admin=True, values=values
                )
            )

    assert pressed, "the result had no feedback components to press"
    for exchange in pressed:
        assert exchange.ephemeral
        assert "Added" not in exchange.text
    assert await guild_a_state(fake) == before


@ASYNC
async def test_admin_commands_refuse_members_whatever_the_client_shows(
    fake: FakeDiscord, bot: BotProcess
) -> None:
    before = await guild_a_state(fake)
    hinted = [c for c in chat_commands(fake) if c.get("default_member_permissions")]
    refused = []

    for command in hinted:
        for options in (fill(command, SECRET), {}):
            if any(
                o.get("required") and o["name"] not in options for o in command.get("options", [])
            ):
                continue
            exchange = await fake.interact(
                command["name"], options, guild_id=GUILD_A, user_id=MEMBER, admin=False
            )
            assert exchange.ephemeral, command["name"]
            assert "Manage Server" in exchange.text, (command["name"], exchange.text)
            assert SECRET_WORDS not in exchange.text
            refused.append(command["name"])

    assert {"addclass", "editclass", "removeclass", "threshold"} <= set(refused)
    assert set(refused) == {c["name"] for c in hinted}
    assert await guild_a_state(fake) == before


@ASYNC
async def test_cooldown_holds_under_a_burst(fake: FakeDiscord, bot: BotProcess) -> None:
    user = new_user()
    message = fake.message_payload("what a goal", guild_id=GUILD_A)
    calls = [
        fake.interact("classify", {"text": f"goal number {i}"}, guild_id=GUILD_A, user_id=user)
        for i in range(16)
    ] + [
        fake.interact("Classify message", guild_id=GUILD_A, user_id=user, target_message=message)
        for _ in range(4)
    ]

    answers = await asyncio.gather(*calls)

    public = [a for a in answers if not a.ephemeral]
    waits = [a for a in answers if a.ephemeral and "Try again in" in a.text]
    assert len(public) == 1
    assert len(waits) == len(answers) - 1


@ASYNC
async def test_token_appears_in_no_log_and_no_reply(
    fake: FakeDiscord, bot: BotProcess, tmp_path: Path
) -> None:
    secret = "zsl-wrong-token-" + "s3cr3t" * 8
    rejected = await BotProcess.start(fake, tmp_path, {"DISCORD_TOKEN": secret})
    rejected_status = await asyncio.wait_for(rejected.process.wait(), 120)
    misconfigured = await BotProcess.start(
        fake, tmp_path, {"DISCORD_TOKEN": secret, "SHARD_IDS": "0,x", "SHARD_COUNT": "2"}
    )
    misconfigured_status = await asyncio.wait_for(misconfigured.process.wait(), 120)

    replies = json.dumps([(e.callback, e.followups) for e in fake.exchanges.values()])
    assert "DEBUG" in bot.log(), "the bot ran with LOG_LEVEL=DEBUG"
    assert TOKEN not in bot.log()
    assert TOKEN not in replies
    assert rejected_status == 2
    assert secret not in rejected.log()
    assert misconfigured_status == 2
    assert secret not in misconfigured.log()


def test_env_file_stays_out_of_git_and_the_image() -> None:
    def ignored(path: str) -> bool:
        check = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=ROOT, capture_output=True, check=False
        )
        return check.returncode == 0

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    docker_ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }

    assert ignored(".env")
    assert ignored("bot/.env")
    assert not ignored(".env.example")
    assert not [p for p in tracked if p.split("/")[-1] == ".env"]
    assert ".env" in docker_ignored
    assert ".env.*" in docker_ignored


def test_image_runs_as_a_non_root_user() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    users = [line.split(None, 1)[1] for line in lines if line.upper().startswith("USER ")]
    last_user = max(i for i, line in enumerate(lines) if line.upper().startswith("USER "))
    cmd = max(i for i, line in enumerate(lines) if line.upper().startswith("CMD "))

    assert users, "no USER instruction: the container would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert last_user < cmd
    uid = next((line for line in lines if "useradd" in line), "")
    assert "--uid 0 " not in uid
    assert "-o" not in uid.split()
