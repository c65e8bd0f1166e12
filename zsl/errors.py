"""Expected failures of the zero-shot core.

Every message is user-safe by contract: plain words, no internals, and the next step. The bot
shows ``str(exc)`` as it is; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

from collections.abc import Iterable

_SHOWN_NAME = 60
_SHOWN_WORD = 30


def _shown(text: str, limit: int) -> str:
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
    """The text to classify is empty, too long or otherwise unusable."""


class InvalidClassError(ZslError):
    """A class name or description breaks a rule (length, line breaks, ...)."""


class UnknownWordsError(ZslError):
    """No word of a text or class definition is in the model's vocabulary."""

    def __init__(self, words: Iterable[str], *, what: str = "text") -> None:
        self.words = tuple(dict.fromkeys(words))
        shown = ", ".join(_shown(w, _SHOWN_WORD) for w in self.words[:10])
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
    """The guild has no classes to classify into."""

    def __init__(self, dormant: tuple[str, ...] = ()) -> None:
        if dormant:
            # After a model change: the classes exist, but the model knows none of their words.
            names = ", ".join(f"'{_shown(n, _SHOWN_NAME)}'" for n in dormant[:5])
            super().__init__(
                f"None of this server's classes can be used with the current model, which knows "
                f"none of their words ({names}). An admin can describe them again with /editclass."
            )
        else:
            super().__init__("This server has no classes yet. An admin can add one with /addclass.")


class ClassNotFoundError(ZslError):
    """No class of that name exists in the guild."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"There is no class named '{_shown(name, _SHOWN_NAME)}'. /classes lists the existing "
            "ones."
        )


class DuplicateClassError(ZslError):
    """A class of that name (ignoring case) already exists in the guild."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"A class named '{_shown(name, _SHOWN_NAME)}' already exists. Pick another name, or "
            "change it with "
            "/editclass."
        )


class ConfusableClassError(DuplicateClassError):
    """A class name looks the same on screen as an existing class's (Unicode confusables)."""

    def __init__(self, name: str, existing: str) -> None:
        self.name = name
        self.existing = existing
        # Not DuplicateClassError's sentence: the names differ, they only look the same.
        ZslError.__init__(
            self,
            f"The name '{_shown(name, _SHOWN_NAME)}' looks the same as the existing class "
            f"'{_shown(existing, _SHOWN_NAME)}'. Pick a clearly different name.",
        )


class ClassLimitError(ZslError):
    """The guild already holds the maximum number of classes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"This server already has {limit} classes, the maximum. Remove one with "
            "/removeclass first."
        )


class ExampleLimitError(ZslError):
    """The class already holds the maximum number of examples."""

    def __init__(self, name: str, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"The class '{_shown(name, _SHOWN_NAME)}' already has {limit} examples, the maximum. "
            "Remove one with /removeexample first."
        )
