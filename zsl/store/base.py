"""The protocol every class registry implements, and what its calls share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Protocol

from zsl.errors import StoreUnavailableError
from zsl.records import Autotag, ClassDefinition, ClassSetFile, GuildRecord, Vote, Watch


class Store(Protocol):
    """A per-guild class registry. Every write is durable when the call returns.

    Writes enforce the rules themselves (unique names per guild, the class limit) inside one
    transaction, so several processes sharing one database cannot break them. A refused or
    failed write changes nothing.
    """

    async def load_all(self) -> dict[int, GuildRecord]:
        """Every guild that has classes or settings."""
        ...

    async def load_guild(self, guild_id: int) -> GuildRecord:
        """One guild (empty if unknown)."""
        ...

    async def load_guilds(self, guild_ids: Collection[int]) -> dict[int, GuildRecord]:
        """Each of ``guild_ids`` (empty if unknown), with its version: one query per table for
        the whole batch."""
        ...

    async def versions(self, guild_ids: Collection[int]) -> dict[int, int]:
        """Each guild's change counter (0 if it was never written). Every write of a guild
        bumps it in the write's transaction."""
        ...

    async def guild_ids(self) -> list[int]:
        """The guilds that have classes or settings, in order."""
        ...

    async def insert_class(self, guild_id: int, cls: ClassDefinition, max_classes: int) -> None:
        """Add a class. Raises DuplicateClassError, ClassLimitError, StoreError."""
        ...

    async def bulk_insert_classes(self, rows: Iterable[tuple[int, ClassDefinition]]) -> None:
        """Store many classes of guilds that hold none yet, in one transaction (filling a
        registry for a benchmark or an import; each call must finish within the call timeout,
        so give it at most some 100,000 rows at a time).

        A guild's classes take the positions 0, 1, ... of their order in ``rows``; that the
        guilds were empty is the caller's promise, not checked. No other process is told, and
        the per-guild rules (limits, look-alikes) are not checked either; a name used twice in a
        guild refuses the whole call and stores nothing.
        """
        ...

    async def replace_class(self, guild_id: int, old_name: str, cls: ClassDefinition) -> None:
        """Replace the class named ``old_name`` (case-insensitive) keeping its position.

        Raises ClassNotFoundError, DuplicateClassError (renaming onto another), StoreError.
        """
        ...

    async def delete_class(self, guild_id: int, name: str) -> None:
        """Remove a class. Raises ClassNotFoundError, StoreError."""
        ...

    async def add_example(
        self, guild_id: int, class_name: str, text: str, max_examples: int
    ) -> None:
        """Add an example text to a class (nothing happens if it is already one).

        Raises ClassNotFoundError, ExampleLimitError, StoreError.
        """
        ...

    async def remove_example(self, guild_id: int, class_name: str, text: str) -> None:
        """Remove an example text from a class. Raises ClassNotFoundError, StoreError."""
        ...

    async def add_vote(self, guild_id: int, vote: Vote, max_votes: int) -> None:
        """Keep a member's vote; beyond ``max_votes`` per guild the oldest are dropped."""
        ...

    async def list_votes(self, guild_id: int, limit: int) -> list[Vote]:
        """The guild's votes, newest first."""
        ...

    async def delete_vote(self, guild_id: int, vote_id: int) -> bool:
        """Forget a vote; False if there was none with that id in this guild."""
        ...

    async def set_threshold(self, guild_id: int, threshold: float | None) -> None:
        """Set the guild's abstain threshold; ``None`` restores the default."""
        ...

    async def import_classes(
        self, guild_id: int, class_set: ClassSetFile, max_classes: int, max_examples: int
    ) -> None:
        """Add every class of ``class_set`` (with its emoji and examples, after the guild's
        classes) and its threshold unless None, in one transaction: all or nothing.

        Raises ClassFileError (a class of the file is taken, looks like another, or has too
        many examples, or the classes would not fit: ``cause`` holds DuplicateClassError,
        ExampleLimitError or ClassLimitError), StoreError.
        """
        ...

    async def set_class_emoji(self, guild_id: int, name: str, emoji: str | None) -> None:
        """Give a class its emoji (None: none). Raises ClassNotFoundError, StoreError."""
        ...

    async def set_watch(self, watch: Watch) -> None:
        """Watch a channel, or change (and enable again) the watch it has."""
        ...

    async def delete_watch(self, guild_id: int, channel_id: int) -> bool:
        """Stop watching a channel; False if it was not watched."""
        ...

    async def list_watches(self, guild_id: int | None = None) -> list[Watch]:
        """The watches of a guild, or of every guild (None), oldest first."""
        ...

    async def set_autotag(self, autotag: Autotag) -> None:
        """Tag a forum's new posts by class, or change how."""
        ...

    async def delete_autotag(self, guild_id: int, forum_id: int) -> bool:
        """Stop tagging a forum's posts; False if it was not tagged."""
        ...

    async def list_autotags(self, guild_id: int | None = None) -> list[Autotag]:
        """The tagged forums of a guild, or of every guild (None), oldest first."""
        ...

    async def get_meta(self, key: str) -> str | None:
        """A process-wide value (e.g. the hash of the last command sync)."""
        ...

    async def set_meta(self, key: str, value: str) -> None:
        """Store a process-wide value."""
        ...

    async def subscribe(
        self,
        on_change: Callable[[int], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        """Call ``on_change(guild_id)`` when another process changes a guild.

        ``on_reconnect()`` runs after a lost connection is re-established, since changes may
        have been missed meanwhile. A store that only one process uses may never call either.
        """
        ...

    async def integrity_check(self) -> list[str]:
        """Problems found in the database; an empty list means it is sound."""
        ...

    async def close(self) -> None:
        """Release the connection(s). Safe to call twice."""
        ...


DEFAULT_STORE_TIMEOUT = 5.0
"""Seconds one store call (opening, a read, a write, closing) may take before it is abandoned."""


def timed_out(verb: str, seconds: float) -> StoreUnavailableError:
    """The refusal of a store call abandoned after ``seconds``; ``verb``: read, written, ..."""
    unit = "second" if seconds == 1 else "seconds"
    return StoreUnavailableError(
        f"The class registry cannot be {verb} right now (the database did not answer within "
        f"{seconds:g} {unit}). Please try again in a minute."
    )
