"""The offline console: parsing, and the real ``python -m bot --console`` fed through a pipe."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

import zsl
from bot import commands, messages, render
from bot.console import Command, Console, UsageError, parse
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


class TestParse:
    def test_first_word_is_the_name_the_rest_the_description(self) -> None:
        assert parse("/addclass sports football match goal") == Command(
            "addclass", {"name": "sports", "description": "football match goal"}
        )

    def test_quoted_names_may_have_spaces(self) -> None:
        assert parse('/addclass "video games" console play') == Command(
            "addclass", {"name": "video games", "description": "console play"}
        )

    def test_discord_style_options(self) -> None:
        assert parse("/editclass sports new_name: football description: soccer goal") == Command(
            "editclass", {"name": "sports", "new_name": "football", "description": "soccer goal"}
        )
        assert parse("/addclass name: video games description: play") == Command(
            "addclass", {"name": "video games", "description": "play"}
        )

    def test_a_line_without_a_slash_is_classified(self) -> None:
        assert parse("what a goal") == Command("classify", {"text": "what a goal"})

    def test_classify_takes_the_whole_line_and_an_optional_top(self) -> None:
        assert parse("/classify a goal: the match top: 2") == Command(
            "classify", {"text": "a goal: the match", "top": "2"}
        )

    def test_add_example_takes_a_name_then_the_text(self) -> None:
        assert parse("/addexample sports what a goal") == Command(
            "addexample", {"name": "sports", "text": "what a goal"}
        )

    def test_remove_takes_the_whole_rest_as_the_name(self) -> None:
        assert parse("/removeclass video games") == Command("removeclass", {"name": "video games"})

    def test_words_ending_in_a_colon_that_are_no_option_stay_text(self) -> None:
        assert parse("/addclass news note: daily report") == Command(
            "addclass", {"name": "news", "description": "note: daily report"}
        )

    def test_unknown_command_is_explained(self) -> None:
        expected = re.escape(messages.console_unknown_command("frobnicate"))

        with pytest.raises(UsageError, match=expected):
            parse("/frobnicate x")

    def test_unclosed_quote_is_explained(self) -> None:
        with pytest.raises(UsageError, match="closing quote"):
            parse('/addclass "video games console')

    def test_a_quote_closed_inside_a_name_is_explained_not_cut(self) -> None:
        # Before: a class named "it" with the description "s fun' play".
        with pytest.raises(UsageError) as refused:
            parse("/addclass 'it's fun' play")

        assert str(refused.value) == messages.CONSOLE_UNBALANCED_QUOTE

    def test_quoting_is_shell_like(self) -> None:
        assert parse('/addclass "it\'s fun" play') == Command(
            "addclass", {"name": "it's fun", "description": "play"}
        )
        assert parse("/addclass video\\ games play") == Command(
            "addclass", {"name": "video games", "description": "play"}
        )

    def test_apostrophes_in_the_text_after_a_name_stay_text(self) -> None:
        assert parse("/addexample sports it's a goal") == Command(
            "addexample", {"name": "sports", "text": "it's a goal"}
        )


@pytest_asyncio.fixture
async def console(tiny: zsl.WordVectors, db_url: str) -> AsyncIterator[Console]:
    service = await zsl.ZeroShotService.open(tiny, db_url)
    yield Console(service)
    await service.close()


class TestWatchingConsoleLines:
    @pytest.mark.asyncio
    async def test_a_watched_console_line_shows_the_reaction_it_would_get(
        self, console: Console
    ) -> None:
        await console.execute("/addclass sports football goal team emoji: \u26bd")
        await console.execute("/addclass music song album band")

        unwatched = await console.execute("football goal")
        watching = await console.execute("/watch react")
        reacted = await console.execute("football goal")
        renamed = await console.execute("/editclass sports new_name: soccer")
        still = await console.execute("the team scored a goal")
        no_emoji = await console.execute("a song from the album")
        listed = await console.execute("/watches")
        stopped = await console.execute("/watch off")
        after = await console.execute("football goal")

        assert "[watch]" not in str(unwatched)
        assert str(watching).startswith(
            f"From now on each new message in {messages.CONSOLE_CHANNEL}"
        )
        assert str(reacted).endswith("\n[watch] reacts \u26bd")
        assert 'Renamed the class "sports" to "soccer"' in str(renamed)
        assert str(still).endswith("\n[watch] reacts \u26bd")  # the rename kept the emoji
        assert str(no_emoji).endswith("\n" + messages.console_watch_react(None, "music"))
        assert listed == f"{messages.CONSOLE_CHANNEL}: reactions"
        assert stopped == messages.watch_off(messages.CONSOLE_CHANNEL)
        assert "[watch]" not in str(after)

    @pytest.mark.asyncio
    async def test_a_class_with_a_bad_emoji_is_not_added(self, console: Console) -> None:
        refused = await console.execute("/addclass music song album emoji: loud")
        listed = await console.execute("/classes")

        assert refused == str(zsl.InvalidEmojiError("loud"))
        assert listed == messages.NO_CLASSES

    @pytest.mark.asyncio
    async def test_the_log_action_prints_the_line_and_the_limit_holds(
        self, console: Console
    ) -> None:
        console.watcher.limit.per_minute = 2
        await console.execute("/addclass sports football goal team")
        await console.execute("/watch log")

        lines = [await console.execute("football goal") for _ in range(4)]

        logged = [str(line).splitlines()[-1] for line in lines]
        assert [line.startswith("[watch] log: **sports**") for line in logged] == [
            True,
            True,
            False,
            False,
        ]


class TestCommandsFromTheTable:
    @pytest.mark.asyncio
    async def test_an_import_larger_than_the_setting_is_refused_unread(
        self, console: Console, tmp_path: Path
    ) -> None:
        large = tmp_path / "large.json"
        large.write_text('{"classes": []}' + " " * 2048, encoding="utf-8")
        console.settings = Settings(import_max_kb=2)

        answer = await console.execute(f"/importclasses {large}")

        assert answer == messages.import_too_large(2063, 2048)
        assert "IMPORT_MAX_KB" in str(answer)

    @pytest.mark.asyncio
    async def test_a_yes_no_option_may_be_typed_as_its_name(self, console: Console) -> None:
        await console.execute("/threshold 0.7")

        answer = await console.execute("/threshold RESET")

        assert answer == messages.threshold_set(zsl.DEFAULT_THRESHOLD)
        assert await console.service.threshold(console.guild_id) == zsl.DEFAULT_THRESHOLD

    @pytest.mark.asyncio
    async def test_a_missing_option_shows_how_to_type_the_command(self, console: Console) -> None:
        await console.execute("/addclass sports football goal")

        answer = await console.execute("/removeexample sports")

        assert answer == messages.console_usage("/removeexample NAME NUMBER")

    @pytest.mark.asyncio
    async def test_a_number_option_refuses_words(self, console: Console) -> None:
        answer = await console.execute("/classify football top: many")

        assert answer == messages.console_bad_value("top", int, "many")

    @pytest.mark.asyncio
    async def test_help_lists_every_console_command_of_the_table(self, console: Console) -> None:
        answer = await console.execute("/help")

        assert isinstance(answer, str)
        for spec in commands.COMMANDS:
            assert (f"  {commands.usage(spec)}" in answer) is spec.console, spec.name
        assert "/votes" not in answer  # votes come from Discord's buttons only

    @pytest.mark.asyncio
    async def test_discord_only_commands_are_unknown(self, console: Console) -> None:
        answer = await console.execute("/votes")

        assert answer == messages.console_unknown_command("votes")


def run_console(stdin: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "PYTHONPATH": str(ROOT),
        "ZSL_CACHE_DIR": os.environ["ZSL_CACHE_DIR"],
        "ZSL_DATABASE_URL": f"sqlite:///{workdir / 'console.sqlite3'}",
        # No DISCORD_TOKEN, and no network needed: the console is offline.
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "--console"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=120,
        check=False,
    )


def test_piped_commands_are_answered_as_text_and_kept(tmp_path: Path) -> None:
    first = run_console(
        "/addclass sports football match team goal league\n"
        "/addclass music song album band concert\n"
        '/addclass "@everyone" news\n'
        "/classify The team scored a late goal in the league match\n"
        "/editclass music new_name: songs\n"
        "/removeclass @everyone\n"
        "/classify qwzxv\n"
        "/nope\n"
        "/quit\n"
        "/afterquit is never read\n",
        tmp_path,
    )
    second = run_console("/classes\n", tmp_path)

    assert first.returncode == 0, first.stderr
    out = first.stdout.splitlines()
    assert out[:2] == [messages.CONSOLE_BANNER, messages.CONSOLE_START]
    assert out[2] == messages.class_added("sports", 1)
    assert out[3] == messages.class_added("music", 2)
    assert out[4] == messages.class_added("@everyone", 3)
    name, bar, percent = out[5].split()[:3]
    assert name == "sports"
    assert len(bar) == render.BAR_WIDTH
    assert abs(bar.count(render.FULL) - int(percent.rstrip("%")) / 10) <= 0.5
    assert 'Renamed the class "music" to "songs"' in first.stdout
    assert messages.class_removed("@everyone", 2) in out
    assert "qwzxv" in first.stdout
    assert messages.console_unknown_command("nope") in out
    assert out[-1] == messages.CONSOLE_BYE
    assert messages.console_unknown_command("afterquit") not in first.stdout
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[:2] == [messages.CONSOLE_BANNER, messages.console_ready(2)]
    assert [line.split()[0] for line in second.stdout.splitlines()[2:-1]] == ["sports", "songs"]
    assert "Traceback" not in first.stderr + second.stderr


def test_examples_are_taught_listed_and_forgotten(tmp_path: Path) -> None:
    result = run_console(
        "/addclass sports football match goal\n"
        "/addexample sports the referee showed a red card\n"
        "/examples sports\n"
        "/removeexample sports 2\n"
        "/removeexample sports 1\n"
        "/examples sports\n"
        "/quit\n",
        tmp_path,
    )

    out = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert out[3] == messages.example_added("sports", 1)
    assert out[4] == "  1. the referee showed a red card"
    assert "has no example number 2" in out[5]
    assert out[5] == "The class 'sports' has no example number 2; it has 1. /examples lists them."
    assert out[6] == messages.example_removed("sports", "the referee showed a red card")
    assert out[7] == messages.NO_EXAMPLES


def test_minus_zero_threshold_and_a_bad_quote_are_answered_plainly(tmp_path: Path) -> None:
    result = run_console("/threshold -0\n/addclass 'it's fun' play\n/classes\n/quit\n", tmp_path)

    out = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert out[2] == messages.threshold_set(0.0)
    assert "-0%" not in result.stdout
    assert out[3] == messages.CONSOLE_UNBALANCED_QUOTE
    assert out[4] == messages.NO_CLASSES  # no class "it" or "its" was created


def test_export_prints_the_classes_as_json(tmp_path: Path) -> None:
    result = run_console(
        "/exportclasses\n"
        "/addclass sports football match\n"
        "/addexample sports what a goal\n"
        "/threshold 0.7\n"
        "/exportclasses\n"
        "/quit\n",
        tmp_path,
    )

    out = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert out[2] == messages.NO_CLASSES
    document = "\n".join(out[6:-1])
    assert json.loads(document) == {
        "threshold": 0.7,
        "classes": [
            {
                "name": "sports",
                "description": "football match",
                "emoji": None,
                "examples": ["what a goal"],
            }
        ],
    }


def test_an_export_imports_whole_or_not_at_all(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    exported = run_console(
        "/addclass sports football match team goal\n"
        "/addexample sports what a goal\n"
        "/addclass music song album band\n"
        "/exportclasses\n",
        source,
    )
    document = "\n".join(exported.stdout.splitlines()[5:-1])
    (tmp_path / "classes.json").write_text(document, encoding="utf-8")

    result = run_console(
        "/addclass Music concert\n"
        f"/importclasses {tmp_path / 'classes.json'}\n"
        "/removeclass music\n"
        f"/importclasses {tmp_path / 'classes.json'}\n"
        f"/importclasses {tmp_path / 'missing.json'}\n"
        "/exportclasses\n",
        target,
    )

    out = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert out[3] == (
        "Nothing was imported. Class 2 of the file ('music') is already a class of this server. "
        "Remove it from the file, or remove the server's class with /removeclass, then import "
        "again."
    )
    assert out[5] == messages.classes_imported(2, 2)
    assert out[6] == messages.console_no_file(str(tmp_path / "missing.json"))
    assert json.loads("\n".join(out[7:-1])) == json.loads(document)
