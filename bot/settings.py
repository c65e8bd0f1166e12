"""Settings: one frozen object read from the environment and an optional ``.env`` file.

Every key is listed, with its default, in ``.env.example``. A bad value stops the bot with
one plain sentence that names the key (:class:`SettingsError`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

from dotenv import dotenv_values

import zsl
from bot import messages
from zsl.store import DEFAULT_DATABASE_URL, DEFAULT_STORE_TIMEOUT, redact_url
from zsl.vectors import default_cache_dir

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_COOLDOWN_SECONDS = 3.0
DEFAULT_FEEDBACK_MINUTES = 15.0
DEFAULT_VOTE_COOLDOWN_SECONDS = 10.0
DEFAULT_IMPORT_MAX_KB = 256  # a full export of 100 classes x 20 examples is about 150 KB
MAX_IMPORT_KB = 25 * 1024  # Discord's own cap on an attachment of a bot without boosts
DEFAULT_AUTO_ACTIONS_PER_MINUTE = 30
MAX_AUTO_ACTIONS_PER_MINUTE = 6_000  # 100 a second: past what one server's channels carry
# Upper bounds of the numeric settings. Past them a value is a typo, not a wish: it would only
# overflow the database's integers or ask Discord for more than it takes.
MAX_CLASSES = 10_000
MAX_NAME_LENGTH = 100  # Discord's cap on an autocomplete choice, which shows class names
MAX_DESCRIPTION_LENGTH = 1_000  # the cog's cap on the description option
MAX_TEXT_LENGTH = 4_000  # Discord's cap on a message
MAX_EXAMPLES = 1_000
MAX_VOTES = 1_000_000
MAX_COOLDOWN_SECONDS = 86_400.0  # one day
MAX_FEEDBACK_MINUTES = 1_440.0  # one day
MAX_SHARDS = 100_000  # room for 100 million servers at 1,000 a shard
MAX_SNOWFLAKE = 2**63 - 1  # every Discord ID fits a signed 64-bit database integer
MAX_STORE_TIMEOUT_SECONDS = 600.0  # ten minutes: far past what a member would wait for
DEFAULT_GUILD_CACHE_MB = zsl.DEFAULT_GUILD_CACHE_BYTES // 2**20
MAX_GUILD_CACHE_MB = 1_048_576  # a terabyte: past any machine this runs on
DEFAULT_CALIBRATION_CACHE_MB = zsl.DEFAULT_CALIBRATION_CACHE_BYTES // 2**20
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
KEYS = (
    "DISCORD_TOKEN",
    "ZSL_MODEL",
    "ZSL_DATABASE_URL",
    "ZSL_STORE_TIMEOUT_SECONDS",
    "ZSL_GUILD_CACHE_MB",
    "ZSL_CALIBRATION_CACHE_MB",
    "ZSL_CACHE_DIR",
    "DEV_GUILD_ID",
    "CLASSIFY_COOLDOWN_SECONDS",
    "ZSL_MAX_CLASSES",
    "ZSL_MAX_NAME_LENGTH",
    "ZSL_MAX_DESCRIPTION_LENGTH",
    "ZSL_MAX_TEXT_LENGTH",
    "ZSL_MAX_EXAMPLES",
    "ZSL_MAX_VOTES",
    "FEEDBACK_MINUTES",
    "VOTE_COOLDOWN_SECONDS",
    "IMPORT_MAX_KB",
    "MESSAGE_CONTENT_INTENT",
    "AUTO_ACTIONS_PER_MINUTE",
    "LOG_LEVEL",
    "DISCORD_API_BASE",
    "DISCORD_GATEWAY_URL",
    "SHARD_COUNT",
    "SHARD_IDS",
)
"""Every setting; ``.env.example`` lists each one with its default."""


class SettingsError(Exception):
    """A setting is missing or malformed; ``str(exc)`` is one sentence naming the key."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the bot and the console can be configured with."""

    token: str | None = None
    model: str = zsl.DEFAULT_MODEL
    database_url: str = DEFAULT_DATABASE_URL
    store_timeout_seconds: float = DEFAULT_STORE_TIMEOUT
    guild_cache_mb: int = DEFAULT_GUILD_CACHE_MB
    calibration_cache_mb: int = DEFAULT_CALIBRATION_CACHE_MB
    cache_dir: Path = field(default_factory=default_cache_dir)
    dev_guild_id: int | None = None
    classify_cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS
    feedback_minutes: float = DEFAULT_FEEDBACK_MINUTES
    vote_cooldown_seconds: float = DEFAULT_VOTE_COOLDOWN_SECONDS
    import_max_kb: int = DEFAULT_IMPORT_MAX_KB
    message_content_intent: bool = False
    auto_actions_per_minute: int = DEFAULT_AUTO_ACTIONS_PER_MINUTE
    limits: zsl.Limits = field(default_factory=zsl.Limits)
    log_level: str = "INFO"
    api_base: str | None = None
    gateway_url: str | None = None
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Parse settings from a mapping such as ``os.environ``; empty values mean "unset".

        Raises:
            SettingsError: a value is malformed; the message names the key.
        """
        values = {key: value.strip() for key, value in env.items() if value and value.strip()}
        defaults = zsl.Limits()
        limits = zsl.Limits(
            name_length=_get(
                values, "ZSL_MAX_NAME_LENGTH", _count(MAX_NAME_LENGTH), defaults.name_length
            ),
            description_length=_get(
                values,
                "ZSL_MAX_DESCRIPTION_LENGTH",
                _count(MAX_DESCRIPTION_LENGTH),
                defaults.description_length,
            ),
            text_length=_get(
                values, "ZSL_MAX_TEXT_LENGTH", _count(MAX_TEXT_LENGTH), defaults.text_length
            ),
            classes_per_guild=_get(
                values, "ZSL_MAX_CLASSES", _count(MAX_CLASSES), defaults.classes_per_guild
            ),
            examples_per_class=_get(
                values, "ZSL_MAX_EXAMPLES", _count(MAX_EXAMPLES), defaults.examples_per_class
            ),
            votes_per_guild=_get(
                values, "ZSL_MAX_VOTES", _count(MAX_VOTES), defaults.votes_per_guild
            ),
        )
        shard_count = _get(values, "SHARD_COUNT", _count(MAX_SHARDS), None)
        shard_ids = _get(values, "SHARD_IDS", _int_list, None)
        if shard_ids is not None:
            if shard_count is None:
                raise SettingsError("SHARD_IDS needs SHARD_COUNT too (the total number of shards).")
            if any(not 0 <= shard_id < shard_count for shard_id in shard_ids):
                raise SettingsError(
                    f"SHARD_IDS must be numbers from 0 to {shard_count - 1} (SHARD_COUNT - 1)."
                )
        log_level = values.get("LOG_LEVEL", "INFO").upper()
        if log_level not in LOG_LEVELS:
            raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}.")
        # The converted-model cache: ZSL_CACHE_DIR, else the per-user cache folder.
        cache_dir = values.get("ZSL_CACHE_DIR")
        return cls(
            token=values.get("DISCORD_TOKEN"),
            model=values.get("ZSL_MODEL", zsl.DEFAULT_MODEL),
            database_url=values.get("ZSL_DATABASE_URL", DEFAULT_DATABASE_URL),
            store_timeout_seconds=_get(
                values, "ZSL_STORE_TIMEOUT_SECONDS", _store_timeout, DEFAULT_STORE_TIMEOUT
            ),
            guild_cache_mb=_get(
                values, "ZSL_GUILD_CACHE_MB", _count(MAX_GUILD_CACHE_MB), DEFAULT_GUILD_CACHE_MB
            ),
            calibration_cache_mb=_get(
                values,
                "ZSL_CALIBRATION_CACHE_MB",
                _count(MAX_GUILD_CACHE_MB),
                DEFAULT_CALIBRATION_CACHE_MB,
            ),
            cache_dir=Path(cache_dir).expanduser()
            if cache_dir
            else default_cache_dir(values.get("XDG_CACHE_HOME")),
            dev_guild_id=_get(values, "DEV_GUILD_ID", _snowflake, None),
            classify_cooldown_seconds=_get(
                values, "CLASSIFY_COOLDOWN_SECONDS", _seconds, DEFAULT_COOLDOWN_SECONDS
            ),
            feedback_minutes=_get(values, "FEEDBACK_MINUTES", _minutes, DEFAULT_FEEDBACK_MINUTES),
            vote_cooldown_seconds=_get(
                values, "VOTE_COOLDOWN_SECONDS", _seconds, DEFAULT_VOTE_COOLDOWN_SECONDS
            ),
            import_max_kb=_get(
                values, "IMPORT_MAX_KB", _count(MAX_IMPORT_KB), DEFAULT_IMPORT_MAX_KB
            ),
            message_content_intent=_get(values, "MESSAGE_CONTENT_INTENT", _flag, False),
            auto_actions_per_minute=_get(
                values,
                "AUTO_ACTIONS_PER_MINUTE",
                _count(MAX_AUTO_ACTIONS_PER_MINUTE),
                DEFAULT_AUTO_ACTIONS_PER_MINUTE,
            ),
            limits=limits,
            log_level=log_level,
            api_base=_get(values, "DISCORD_API_BASE", _http_url, None),
            gateway_url=_get(values, "DISCORD_GATEWAY_URL", _ws_url, None),
            shard_count=shard_count,
            shard_ids=shard_ids,
        )

    @classmethod
    def load(cls, env_file: str | os.PathLike[str] = ".env") -> Settings:
        """Parse ``env_file`` under the real environment (real variables win).

        Neither is changed: the core gets every value as an argument, never from ``os.environ``.

        Raises:
            SettingsError: a value is malformed.
        """
        from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        return cls.from_mapping({**from_file, **os.environ})

    def require_token(self) -> str:
        """The Discord token. Raises SettingsError with where to get one when it is missing."""
        if not self.token:
            raise SettingsError(messages.TOKEN_MISSING)
        return self.token

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks: the token and the database password stay out.
        shown = {field.name: getattr(self, field.name) for field in fields(self)}
        shown["token"] = "***" if self.token else None
        shown["database_url"] = redact_url(self.database_url)
        return f"Settings({', '.join(f'{name}={value!r}' for name, value in shown.items())})"


def _get(values: Mapping[str, str], key: str, parse: Callable[[str], T], default: T) -> T:
    raw = values.get(key)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise SettingsError(f"{key} must be {exc}, not {raw!r}.") from None


def _whole_number(raw: str) -> int | None:
    """``raw`` as a plain decimal number, or None (also for Unicode digits such as '²')."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 30 else None


def _count(maximum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = _whole_number(raw)
        if value is None or not 1 <= value <= maximum:
            raise ValueError(f"a whole number from 1 to {maximum:,}")
        return value

    return parse


def _flag(raw: str) -> bool:
    word = raw.lower()
    if word not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        raise ValueError("true or false")
    return word in ("true", "yes", "on", "1")


def _snowflake(raw: str) -> int:
    value = _whole_number(raw)
    if value is None or not 1 <= value <= MAX_SNOWFLAKE:
        raise ValueError("a server ID (the number from Copy Server ID)")
    return value


def _duration(unit: str, maximum: float, meaning: str) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not 0 <= value <= maximum:  # also refuses nan and infinity
            raise ValueError(f"a number of {unit} from 0 to {maximum:,g} ({meaning})")
        return value

    return parse


_seconds = _duration("seconds", MAX_COOLDOWN_SECONDS, "one day")
_minutes = _duration("minutes", MAX_FEEDBACK_MINUTES, "one day")


def _store_timeout(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_STORE_TIMEOUT_SECONDS:  # 0 would refuse every call; nan, inf too
        raise ValueError(
            f"a number of seconds above 0 and up to {MAX_STORE_TIMEOUT_SECONDS:,g} (ten minutes)"
        )
    return value


def _int_list(raw: str) -> tuple[int, ...]:
    numbers = [_whole_number(part.strip()) for part in raw.split(",")]
    if any(number is None for number in numbers):
        raise ValueError("a comma-separated list of shard numbers such as 0,1,2")
    return tuple(dict.fromkeys(number for number in numbers if number is not None))


def _http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("an http:// or https:// URL")
    return raw.rstrip("/")


def _ws_url(raw: str) -> str:
    if not raw.startswith(("ws://", "wss://")):
        raise ValueError("a ws:// or wss:// URL")
    return raw


class ShardGuilds:
    """Which guilds this process serves: those of its shards, ``(guild_id >> 22) % count``,
    and any guild Discord delivers to it anyway.

    Discord sends a guild's interactions to the shard that holds it; when shards are
    rebalanced a guild moves, and where Discord sends it is where it is served from then on.
    The service reads only the guilds this says yes to.
    """

    def __init__(self, shard_count: int, shard_ids: tuple[int, ...]) -> None:
        self.shard_count = shard_count
        self.shard_ids = frozenset(shard_ids)
        self._moved_here: set[int] = set()

    def __call__(self, guild_id: int) -> bool:
        return (guild_id >> 22) % self.shard_count in self.shard_ids or guild_id in self._moved_here

    def delivered(self, guild_id: int) -> None:
        """Discord sent an interaction of ``guild_id`` to this process: serve it."""
        if not self(guild_id):
            log.warning(
                "guild %d arrived outside shards %s of %d: Discord moved it here; serving it",
                guild_id,
                sorted(self.shard_ids),
                self.shard_count,
            )
            self._moved_here.add(guild_id)

    @classmethod
    def of(cls, settings: Settings) -> ShardGuilds | None:
        """The guilds ``settings``' shards serve; None when this process runs every shard."""
        if settings.shard_ids is None or settings.shard_count is None:
            return None
        if set(settings.shard_ids) >= set(range(settings.shard_count)):
            return None
        return cls(settings.shard_count, settings.shard_ids)
