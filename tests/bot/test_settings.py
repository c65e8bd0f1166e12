"""Settings: defaults, every key, one plain sentence naming the key for each bad value."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from unittest import mock

import pytest

import zsl
from bot import messages
from bot.settings import (
    KEYS,
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TEXT_LENGTH,
    Settings,
    SettingsError,
)
from zsl.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.from_mapping({})

    assert settings.token is None
    assert settings.model == zsl.DEFAULT_MODEL
    assert settings.database_url == "sqlite:///data/zsl.sqlite3"
    assert settings.limits == zsl.Limits()
    assert settings.classify_cooldown_seconds == 3.0
    assert settings.vote_cooldown_seconds == 10.0
    assert settings.dev_guild_id is None
    assert settings.shard_count is None
    assert settings.shard_ids is None
    assert settings.log_level == "INFO"
    assert settings.store_timeout_seconds == 5.0


def test_every_key_is_read() -> None:
    env = {
        "DISCORD_TOKEN": " abc.def ",
        "ZSL_MODEL": "/models/w2v.bin",
        "ZSL_DATABASE_URL": "sqlite:////srv/zsl.db",
        "ZSL_STORE_TIMEOUT_SECONDS": "2.5",
        "ZSL_CACHE_DIR": "/tmp/cache",
        "ZSL_GUILD_CACHE_MB": "64",
        "ZSL_CALIBRATION_CACHE_MB": "8",
        "DEV_GUILD_ID": "123456789012345678",
        "CLASSIFY_COOLDOWN_SECONDS": "0",
        "ZSL_MAX_CLASSES": "7",
        "ZSL_MAX_NAME_LENGTH": "20",
        "ZSL_MAX_DESCRIPTION_LENGTH": "80",
        "ZSL_MAX_TEXT_LENGTH": "500",
        "ZSL_MAX_EXAMPLES": "4",
        "ZSL_MAX_VOTES": "9",
        "FEEDBACK_MINUTES": "2.5",
        "VOTE_COOLDOWN_SECONDS": "7",
        "IMPORT_MAX_KB": "64",
        "MESSAGE_CONTENT_INTENT": "True",
        "AUTO_ACTIONS_PER_MINUTE": "12",
        "LOG_LEVEL": "debug",
        "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10/",
        "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/gateway",
        "SHARD_COUNT": "4",
        "SHARD_IDS": "1, 3",
    }

    settings = Settings.from_mapping(env)

    assert set(env) == set(KEYS)
    assert settings == Settings(
        token="abc.def",
        model="/models/w2v.bin",
        database_url="sqlite:////srv/zsl.db",
        store_timeout_seconds=2.5,
        guild_cache_mb=64,
        calibration_cache_mb=8,
        cache_dir=Path("/tmp/cache"),
        dev_guild_id=123456789012345678,
        classify_cooldown_seconds=0.0,
        feedback_minutes=2.5,
        vote_cooldown_seconds=7.0,
        import_max_kb=64,
        message_content_intent=True,
        auto_actions_per_minute=12,
        limits=zsl.Limits(
            name_length=20,
            description_length=80,
            text_length=500,
            classes_per_guild=7,
            examples_per_class=4,
            votes_per_guild=9,
        ),
        log_level="DEBUG",
        api_base="http://127.0.0.1:9/api/v10",
        gateway_url="ws://127.0.0.1:9/gateway",
        shard_count=4,
        shard_ids=(1, 3),
    )


def test_repr_hides_the_token_and_the_database_password() -> None:
    settings = Settings.from_mapping(
        {
            "DISCORD_TOKEN": "MTIz.token-secret",
            "ZSL_DATABASE_URL": "postgresql://zsl:S3cretPW@db/zsl",
        }
    )

    shown = repr(settings)

    assert "token-secret" not in shown
    assert "S3cretPW" not in shown
    assert "token='***'" in shown
    assert "database_url='postgresql://zsl:***@db/zsl'" in shown
    assert f"model={zsl.DEFAULT_MODEL!r}" in shown  # the rest is shown as it is
    assert "token=None" in repr(Settings.from_mapping({}))


def test_empty_values_mean_unset() -> None:
    settings = Settings.from_mapping({"ZSL_MAX_CLASSES": "", "DEV_GUILD_ID": "  "})

    assert settings.limits.classes_per_guild == 100
    assert settings.dev_guild_id is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ZSL_MAX_CLASSES", "ten"),
        ("ZSL_MAX_CLASSES", "0"),
        ("ZSL_MAX_NAME_LENGTH", "-5"),
        ("ZSL_MAX_DESCRIPTION_LENGTH", "1.5"),
        ("ZSL_MAX_TEXT_LENGTH", "lots"),
        ("CLASSIFY_COOLDOWN_SECONDS", "-1"),
        ("CLASSIFY_COOLDOWN_SECONDS", "nan"),
        ("CLASSIFY_COOLDOWN_SECONDS", "inf"),
        ("DEV_GUILD_ID", "my server"),
        ("LOG_LEVEL", "LOUD"),
        ("DISCORD_API_BASE", "discord.com/api"),
        ("DISCORD_GATEWAY_URL", "http://gateway"),
        ("SHARD_COUNT", "0"),
        ("SHARD_IDS", "0,x"),
        ("ZSL_MAX_VOTES", "100000000000000000000"),
        ("ZSL_MAX_CLASSES", "9" * 5000),  # past Python's own limit on parsing digits
        ("FEEDBACK_MINUTES", "1e400"),
        ("DEV_GUILD_ID", "\u00b2"),  # a digit to str.isdigit, not to int()
        ("DEV_GUILD_ID", str(2**63)),
        ("SHARD_IDS", "0,\u00b9"),
        ("ZSL_STORE_TIMEOUT_SECONDS", "0"),
        ("ZSL_STORE_TIMEOUT_SECONDS", "-1"),
        ("ZSL_STORE_TIMEOUT_SECONDS", "nan"),
        ("ZSL_STORE_TIMEOUT_SECONDS", "601"),
        ("ZSL_STORE_TIMEOUT_SECONDS", "soon"),
        ("ZSL_GUILD_CACHE_MB", "0"),
        ("ZSL_GUILD_CACHE_MB", "1.5"),
        ("ZSL_CALIBRATION_CACHE_MB", "0"),
    ],
)
def test_bad_value_is_one_sentence_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping(
            {key: value, "SHARD_COUNT": "2"} if key == "SHARD_IDS" else {key: value}
        )

    text = str(caught.value)
    assert text.startswith(key)
    assert text.endswith(".")
    assert "\n" not in text
    assert len(re.findall(r"\.\s", text)) == 0, "one sentence"


NUMERIC_MAXIMA = [
    ("ZSL_MAX_CLASSES", "10000", "a whole number from 1 to 10,000"),
    ("ZSL_MAX_NAME_LENGTH", "100", "a whole number from 1 to 100"),
    ("ZSL_MAX_DESCRIPTION_LENGTH", "1000", "a whole number from 1 to 1,000"),
    ("ZSL_MAX_TEXT_LENGTH", "4000", "a whole number from 1 to 4,000"),
    ("ZSL_MAX_EXAMPLES", "1000", "a whole number from 1 to 1,000"),
    ("ZSL_MAX_VOTES", "1000000", "a whole number from 1 to 1,000,000"),
    ("SHARD_COUNT", "100000", "a whole number from 1 to 100,000"),
    ("CLASSIFY_COOLDOWN_SECONDS", "86400", "a number of seconds from 0 to 86,400 (one day)"),
    ("FEEDBACK_MINUTES", "1440", "a number of minutes from 0 to 1,440 (one day)"),
    ("ZSL_STORE_TIMEOUT_SECONDS", "600", "a number of seconds above 0 and up to 600 (ten minutes)"),
    ("DEV_GUILD_ID", str(2**63 - 1), "a server ID (the number from Copy Server ID)"),
    ("ZSL_GUILD_CACHE_MB", "1048576", "a whole number from 1 to 1,048,576"),
    ("ZSL_CALIBRATION_CACHE_MB", "1048576", "a whole number from 1 to 1,048,576"),
]


def test_every_numeric_key_has_an_upper_bound() -> None:
    numeric = {key for key, _, _ in NUMERIC_MAXIMA}

    assert numeric == {
        key for key in KEYS if key.startswith("ZSL_MAX_") or key.endswith(("_ID", "_COUNT"))
    } | {
        "CLASSIFY_COOLDOWN_SECONDS",
        "FEEDBACK_MINUTES",
        "ZSL_STORE_TIMEOUT_SECONDS",
        "ZSL_GUILD_CACHE_MB",
        "ZSL_CALIBRATION_CACHE_MB",
    }


@pytest.mark.parametrize(("key", "maximum", "meaning"), NUMERIC_MAXIMA)
def test_numbers_past_their_maximum_are_refused_naming_the_range(
    key: str, maximum: str, meaning: str
) -> None:
    too_big = str(int(maximum) + 1)

    accepted = Settings.from_mapping({key: maximum})
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping({key: too_big})

    assert accepted != Settings.from_mapping({})
    assert str(caught.value) == f"{key} must be {meaning}, not '{too_big}'."


def test_huge_max_votes_is_refused_before_any_vote_overflows() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping({"ZSL_MAX_VOTES": "100000000000000000000"})

    assert str(caught.value) == (
        "ZSL_MAX_VOTES must be a whole number from 1 to 1,000,000, not '100000000000000000000'."
    )


def test_the_largest_vote_limit_is_one_the_database_takes(tmp_path: Path) -> None:
    limits = Settings.from_mapping({"ZSL_MAX_VOTES": "1000000"}).limits

    async def vote_and_read() -> list[zsl.Vote]:
        store = await open_store(f"sqlite:///{tmp_path}/z.sqlite3")
        try:
            await store.add_vote(
                1, zsl.Vote(5, "what a goal", "sports", None), limits.votes_per_guild
            )
            return await store.list_votes(1, 10)
        finally:
            await store.close()

    votes = asyncio.run(vote_and_read())

    assert [(v.user_id, v.text) for v in votes] == [(5, "what a goal")]


def test_length_maxima_are_the_commands_own_caps() -> None:
    from bot import commands

    # A longer limit could never be reached through Discord (and names past 100 characters
    # would break the autocomplete choices that show them).
    assert (MAX_NAME_LENGTH, MAX_DESCRIPTION_LENGTH, MAX_TEXT_LENGTH) == (
        commands.MAX_NAME,
        commands.MAX_DESCRIPTION,
        commands.MAX_TEXT,
    )


def test_shard_ids_need_a_shard_count() -> None:
    with pytest.raises(SettingsError, match=r"^SHARD_IDS needs SHARD_COUNT"):
        Settings.from_mapping({"SHARD_IDS": "0"})


def test_shard_ids_must_be_below_the_shard_count() -> None:
    with pytest.raises(SettingsError, match=r"^SHARD_IDS must be numbers from 0 to 1"):
        Settings.from_mapping({"SHARD_COUNT": "2", "SHARD_IDS": "0,2"})


def test_missing_token_says_where_to_get_one() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping({}).require_token()

    assert str(caught.value) == messages.TOKEN_MISSING
    assert "https://discord.com/developers/applications" in messages.TOKEN_MISSING
    assert ".env" in messages.TOKEN_MISSING


def test_env_file_is_read_and_real_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DISCORD_TOKEN=from-file\nZSL_MAX_CLASSES=7\n")

    with mock.patch.dict(os.environ, {"DISCORD_TOKEN": "from-environment"}):
        os.environ.pop("ZSL_MAX_CLASSES", None)
        settings = Settings.load(env_file)

    assert settings.token == "from-environment"
    assert settings.limits.classes_per_guild == 7


def test_env_example_lists_every_key_with_its_default() -> None:
    example = (ROOT / ".env.example").read_text()
    listed = dict(
        line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#")
    )

    assert set(listed) == set(KEYS)
    parsed = Settings.from_mapping(listed)
    assert parsed == Settings.from_mapping({})


def test_env_file_is_read_without_changing_the_environment(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ZSL_MAX_CLASSES=7\nZSL_CACHE_DIR=/srv/zsl-cache\n")

    with mock.patch.dict(os.environ, {}):
        for key in ("ZSL_MAX_CLASSES", "ZSL_CACHE_DIR"):
            os.environ.pop(key, None)
        settings = Settings.load(env_file)
        left = {key: os.environ.get(key) for key in ("ZSL_MAX_CLASSES", "ZSL_CACHE_DIR")}

    assert settings.limits.classes_per_guild == 7
    assert settings.cache_dir == Path("/srv/zsl-cache")
    assert left == {"ZSL_MAX_CLASSES": None, "ZSL_CACHE_DIR": None}


def test_the_model_cache_defaults_to_the_per_user_cache_folder() -> None:
    assert Settings.from_mapping({}).cache_dir == Path.home() / ".cache" / "zsl"
    assert Settings.from_mapping({"XDG_CACHE_HOME": "/x"}).cache_dir == Path("/x/zsl")
    assert Settings.from_mapping({"XDG_CACHE_HOME": "/x", "ZSL_CACHE_DIR": "/y"}).cache_dir == Path(
        "/y"
    )
