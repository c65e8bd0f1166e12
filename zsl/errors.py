"""Expected failures of the zero-shot core.

Each error carries its data as attributes (the class name, the limit, the number asked for...)
and a neutral default message: a plain, user-safe sentence with the next step that names no
command of any front end. Each boundary words errors for its audience from that data, at one
point: ``bot.messages.error_text`` for Discord and the console, ``zsl.cli`` for the command
line. Whatever a message quotes from user input goes through :func:`shown_input` first.
"""

from __future__ import annotations

from collections.abc import Iterable

_SHOWN_NAME = 60
_SHOWN_WORD = 30


def shown_input(text: str, limit: int = _SHOWN_NAME) -> str:
    """User input as it may appear inside a message: one line, printable, at most ``limit``."""
    visible = "".join(ch if ch.isprintable() else " " for ch in text)
    visible = " ".join(visible.split())
    return visible if len(visible) <= limit else visible[: limit - 1] + "\u2026"


class ZslError(Exception):
    """Base class of every expected failure; ``str(exc)`` is a sentence a user may read."""


class ModelError(ZslError):
    """The word-vector model could not be found, recognised or read."""


class StoreError(ZslError):
    """The class registry (SQLite or PostgreSQL) could not be read or written."""


class StoreUnavailableError(StoreError):
    """The database is unreachable or refuses writes right now; retrying later may succeed."""


class InvalidTextError(ZslError):
    """The text to classify is empty, too long or otherwise unusable.

    When its length is the problem, ``length`` and ``limit`` say so (``length`` 0: no text at
    all, or only blanks) and the message is written from them; other cases pass their own
    sentence.
    """

    def __init__(
        self, message: str | None = None, *, length: int | None = None, limit: int | None = None
    ) -> None:
        self.length = length
        self.limit = limit
        if message is None:
            if not length:
                message = "There is no text to classify. Write a sentence or two."
            else:
                message = (
                    f"The text is {length} characters long; the limit is {limit}. Shorten it "
                    "and try again."
                )
        super().__init__(message)


class InvalidClassError(ZslError):
    """A class name or description breaks a rule (length, line breaks, ...)."""


class ExampleNotFoundError(InvalidClassError):
    """The class has no example of that number (1 = the oldest).

    An InvalidClassError because that is what this case raised before it had its own type.
    """

    def __init__(self, name: str, number: int, count: int) -> None:
        self.name = name
        self.number = number
        self.count = count
        super().__init__(
            f"The class '{shown_input(name)}' has no example number {number}; it has {count}."
        )


class VoteNotFoundError(InvalidClassError):
    """The guild has no vote of that number (already dismissed, or never given).

    An InvalidClassError because that is what this case raised before it had its own type.
    """

    def __init__(self, number: int) -> None:
        self.number = number
        super().__init__(f"There is no vote number {number}. List the votes to see their numbers.")


class InvalidThresholdError(InvalidClassError):
    """An abstain threshold outside [0, 1] (or not a number).

    An InvalidClassError because that is what this case raised before it had its own type.
    """

    def __init__(self, value: float, default: float) -> None:
        self.value = value
        self.default = default
        super().__init__(f"The threshold must be between 0 and 1 (the default is {default}).")


class UnknownWordsError(ZslError):
    """No word of a text or class definition is in the model's vocabulary.

    ``what`` names what was refused: "text", "example", or a class ("class 'sports'").
    """

    def __init__(self, words: Iterable[str], *, what: str = "text") -> None:
        self.words = tuple(dict.fromkeys(words))
        self.what = what
        shown = ", ".join(shown_input(w, _SHOWN_WORD) for w in self.words[:10])
        shown += " ..." if len(self.words) > 10 else ""
        if self.words:
            detail = f"none of its words are known to the model ({shown})"
        else:
            detail = "it has no words once links, mentions, emoji and code are left out"
        if what in ("text", "example"):
            hint = "Try a longer sentence in plain words."
        else:
            hint = "Describe it with a few common English words, e.g. 'football match team goal'."
        super().__init__(f"The {what} cannot be classified: {detail}. {hint}")


class NoClassesError(ZslError):
    """There are no classes to classify into.

    ``dormant`` names the classes that exist but cannot be used: after a model change, the
    model may know none of their words.
    """

    def __init__(self, dormant: tuple[str, ...] = ()) -> None:
        self.dormant = tuple(dormant)
        if self.dormant:
            names = ", ".join(f"'{shown_input(n)}'" for n in self.dormant[:5])
            super().__init__(
                "None of the classes can be used with the current model, which knows none of "
                f"their words ({names}). Describe them again in words it knows."
            )
        else:
            super().__init__("There are no classes yet. Add one first.")


class ClassNotFoundError(ZslError):
    """No class of that name exists in the guild."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"There is no class named '{shown_input(name)}'. Check the name.")


class DuplicateClassError(ZslError):
    """A class of that name (ignoring case) already exists in the guild."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"A class named '{shown_input(name)}' already exists. Pick another name.")


class ConfusableClassError(DuplicateClassError):
    """A class name looks the same on screen as an existing class's (Unicode confusables)."""

    def __init__(self, name: str, existing: str) -> None:
        self.name = name
        self.existing = existing
        # Not DuplicateClassError's sentence: the names differ, they only look the same.
        ZslError.__init__(
            self,
            f"The name '{shown_input(name)}' looks the same as the existing class "
            f"'{shown_input(existing)}'. Pick a clearly different name.",
        )


class ClassLimitError(ZslError):
    """The guild already holds the maximum number of classes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"There are already {limit} classes, the maximum. Remove one first.")


class ExampleLimitError(ZslError):
    """The class already holds the maximum number of examples."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        super().__init__(
            f"The class '{shown_input(name)}' already has {limit} examples, the maximum. "
            "Remove one first."
        )


class GuildNotServedError(ZslError):
    """The guild belongs to another process's shards: this one never reads it."""

    def __init__(self, guild_id: int) -> None:
        self.guild_id = guild_id
        super().__init__(
            "This server is handled by another part of the service right now. Please try again "
            "in a minute."
        )


class InvalidEmojiError(InvalidClassError):
    """A class's emoji is not one emoji (a Unicode emoji or a server emoji such as <:bug:123>)."""

    def __init__(self, emoji: str) -> None:
        self.emoji = emoji
        super().__init__(
            f"'{shown_input(emoji, _SHOWN_WORD)}' is not one emoji. Give a single emoji such as "
            "\U0001f41b, or a server emoji picked from the emoji menu."
        )


class ClassFileError(ZslError):
    """A class-set file (an export) cannot be imported; nothing was added.

    ``number`` and ``name``: the class of the file at fault (1 = the first), when one is;
    ``cause``: the refusal that class got, as adding it alone would have got it.
    """

    def __init__(
        self,
        message: str,
        *,
        number: int | None = None,
        name: str | None = None,
        cause: ZslError | None = None,
    ) -> None:
        self.number = number
        self.name = name
        self.cause = cause
        super().__init__(message)

    @classmethod
    def too_many(cls, in_file: int, in_guild: int, limit: int) -> ClassFileError:
        """The file's classes and the guild's would be more than ``limit``."""
        return cls(
            f"The file's {in_file} classes and the {in_guild} already there would be more than "
            f"{limit}, the maximum. Remove classes from the file or from the server first.",
            cause=ClassLimitError(limit),
        )
