"""The plain data of the class registry and the rules for class names: what the domain
defines and every store keeps. A leaf module: the store and the domain both import it."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources

from zsl.errors import ConfusableClassError

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): drawn as nothing at all
# (zero-width marks, variation selectors, Hangul fillers, tags), so they cannot tell names apart.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
# Not ignorable, but drawn as an empty space (BRAILLE PATTERN BLANK, MUSICAL SYMBOL NULL NOTEHEAD).
_BLANK = re.compile("[\u2800\U0001d159]")
# What no registry keeps faithfully: PostgreSQL refuses NUL, and UTF-8 has no lone surrogates.
_BROKEN = re.compile("[\x00\ud800-\udfff]")


def name_key(name: str) -> str:
    """The identity of a class name: case, width and whitespace differences do not count.

    Stored keys were computed by this function: changing what it returns for a name that may
    be stored would make that class impossible to find. Names that only look alike are told
    apart by :func:`name_skeleton` instead.
    """
    cleaned = "".join(ch for ch in unicodedata.normalize("NFKC", name) if ch.isprintable())
    return " ".join(cleaned.split()).casefold()


def strip_invisible(text: str) -> str:
    """``text`` as a reader sees it: ignorable characters gone, blank-looking ones as spaces."""
    return _BLANK.sub(" ", _IGNORABLE.sub("", text))


def has_broken_characters(text: str) -> bool:
    """Whether ``text`` holds a NUL or a lone surrogate, which no registry can keep."""
    return _BROKEN.search(text) is not None


@functools.cache
def _prototypes() -> dict[str, str]:
    """Each confusable character -> the string that stands for its whole set (Unicode TR39).

    The data is Unicode's confusables.txt as the confusable-homoglyphs package ships it: a
    source character lists its prototype, a prototype lists its sources. A pair that list only
    each other is one set either way round; the lower code point stands for it.
    """
    raw = json.loads(
        resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    marks = str.maketrans("", "", "\u200e\u200f")  # right-to-left entries come wrapped in these
    lists: dict[str, list[str]] = {}
    for key, entries in raw.items():
        lists.setdefault(key.translate(marks), []).extend(e["c"].translate(marks) for e in entries)
    direct: dict[str, str] = {}
    for char, entries in lists.items():
        if len(char) != 1 or len(entries) != 1:
            continue  # a prototype of several sources, or a sequence that is only a prototype
        (other,) = entries
        back = lists.get(other, [])
        if len(other) > 1 or len(back) > 1 or (back == [char] and other < char):
            direct[char] = other

    def resolve(text: str, depth: int = 0) -> str:
        # A prototype sequence may hold a character that stands for something else in turn.
        if depth > 8:
            return text
        return "".join(resolve(direct[c], depth + 1) if c in direct else c for c in text)

    return {char: resolve(other) for char, other in direct.items()}


def _confusable_form(text: str) -> str:
    prototypes = _prototypes()
    return unicodedata.normalize("NFD", "".join(prototypes.get(ch, ch) for ch in text))


@functools.lru_cache(maxsize=1 << 16)
def name_skeleton(name: str) -> str:
    """What a name looks like: two names with one skeleton cannot be told apart on screen.

    Unicode TR39's skeleton (decomposed, ignorable characters dropped, each character replaced
    by the prototype of its confusable set), taken again after case folding: names that differ
    in case are one name already, so a capital Cyrillic DZE looks like 's' as much as 'S'.
    """
    text = strip_invisible(unicodedata.normalize("NFKD", name))
    text = "".join(ch for ch in text if ch.isprintable() or ch.isspace())
    text = _confusable_form(unicodedata.normalize("NFKD", _confusable_form(text).casefold()))
    return " ".join(text.split())


def check_not_look_alike(name: str, others: Iterable[str]) -> None:
    """Refuse ``name`` if it looks the same as one of ``others`` (the guild's other classes).

    Raises:
        ConfusableClassError: naming the class it looks like.
    """
    skeleton = name_skeleton(name)
    if not skeleton:
        return  # nothing visible to compare; validation refuses such names on its own
    for other in others:
        if name_skeleton(other) == skeleton:
            raise ConfusableClassError(name, other)


@dataclass(frozen=True, slots=True)
class ClassDefinition:
    """A class as admins define it and the store keeps it; vectors are always recomputed."""

    name: str
    description: str = ""
    examples: tuple[str, ...] = ()
    """Texts an admin confirmed as belonging to the class, oldest first."""

    @property
    def key(self) -> str:
        return name_key(self.name)


@dataclass(frozen=True, slots=True)
class Vote:
    """A member's feedback on a classification, kept for admins to review."""

    user_id: int
    text: str
    predicted: str
    suggested: str | None
    """The class the member says is right, or None when they agreed with ``predicted``."""
    id: int = 0
    created_at: float = 0.0
    result: str | None = None
    """The result voted on (one vote per member and result); None for votes before it."""


@dataclass(frozen=True, slots=True)
class GuildRecord:
    """Everything stored for one guild: its classes in creation order and its settings."""

    classes: tuple[ClassDefinition, ...] = ()
    threshold: float | None = None
    version: int = field(default=0, compare=False)
    """The guild's change counter when it was read (0: never written); not part of what the
    guild holds, so two reads of the same content compare equal."""
