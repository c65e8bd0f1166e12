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

from zsl.errors import ClassFileError, ConfusableClassError, InvalidEmojiError, shown_input

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
    emoji: str | None = None
    """What a watched channel's messages of this class get as a reaction (see check_emoji)."""

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


# A server emoji as Discord writes it in text: <:name:id>, or <a:name:id> when animated.
_SERVER_EMOJI = re.compile(r"<a?:[A-Za-z0-9_]{2,32}:[0-9]{15,21}>")
# What may follow or join the pictographs of one Unicode emoji: skin tones (Sk), variation
# selectors and the keycap mark (Mn, Me), the zero-width joiner and tag characters (Cf).
_EMOJI_PARTS = {"So", "Sk", "Mn", "Me", "Cf"}
_MAX_EMOJI = 32
"""Characters of the longest emoji sequence worth keeping (family and flag sequences)."""


def check_emoji(emoji: str) -> str:
    """``emoji`` trimmed, if it is one emoji: Unicode pictographs (with their joiners, skin
    tones, keycaps) or a server emoji ``<:name:id>``.

    Raises:
        InvalidEmojiError: it is empty, text, several words, or too long to be one emoji.
    """
    emoji = emoji.strip()
    if _SERVER_EMOJI.fullmatch(emoji):
        return emoji
    keycap = len(emoji) in (2, 3) and emoji[0] in "#*0123456789" and emoji[-1] == "\u20e3"
    parts = all(unicodedata.category(ch) in _EMOJI_PARTS for ch in emoji)
    pictograph = any(unicodedata.category(ch) == "So" for ch in emoji)
    if not (keycap or (parts and pictograph)) or len(emoji) > _MAX_EMOJI:
        raise InvalidEmojiError(emoji)
    return emoji


@dataclass(frozen=True, slots=True)
class ClassSetFile:
    """A guild's class set as an export file holds it: the classes in order and the guild's
    own threshold (None: the default, whatever it is where the file is imported)."""

    classes: tuple[ClassDefinition, ...]
    threshold: float | None = None


_FILE_KEYS = {"classes", "threshold"}
_CLASS_KEYS = {"name", "description", "emoji", "examples"}


def dump_class_set(class_set: ClassSetFile) -> str:
    """The export file of a class set: JSON that :func:`parse_class_set` reads back."""
    document = {
        "threshold": class_set.threshold,
        "classes": [
            {
                "name": c.name,
                "description": c.description,
                "emoji": c.emoji,
                "examples": list(c.examples),
            }
            for c in class_set.classes
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


def parse_class_set(text: str) -> ClassSetFile:
    """Read an export file's shape: ``{"threshold": null | 0..1, "classes": [{"name": ...,
    "description": ..., "emoji": null | "...", "examples": [...]}, ...]}``.

    Only the shape is checked here (each class's own rules are the registry's to check).

    Raises:
        ClassFileError: the text is not JSON of that shape; the sentence says what is wrong.
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # also a number too long, nesting too deep
        line = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ClassFileError(
            f"The file is not valid JSON{line}. Export the classes again, or fix the file."
        ) from exc
    shape = (
        'It must be an export of classes: {"threshold": ..., "classes": [{"name": ..., '
        '"description": ..., "emoji": ..., "examples": [...]}, ...]}.'
    )
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise ClassFileError(f"The file has no list of classes. {shape}")
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise ClassFileError(f"The file has an unknown field '{shown_input(unknown[0])}'. {shape}")
    threshold = data.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 <= threshold <= 1
    ):
        raise ClassFileError(
            "The file's threshold must be a number between 0 and 1, or null for the default. "
            "Fix it in the file."
        )
    classes = tuple(
        _class_of_file(number, item) for number, item in enumerate(data["classes"], start=1)
    )
    return ClassSetFile(classes, None if threshold is None else float(threshold))


def _class_of_file(number: int, item: object) -> ClassDefinition:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ClassFileError(
            f'Class {number} in the file has no name. Give each class a "name" in the file.',
            number=number,
        )
    name: str = item["name"]

    def refuse(what: str) -> ClassFileError:
        return ClassFileError(
            f"Class {number} in the file ('{shown_input(name)}') {what}. Fix it in the file.",
            number=number,
            name=name,
        )

    unknown = sorted(set(item) - _CLASS_KEYS)
    if unknown:
        raise refuse(f"has an unknown field '{shown_input(unknown[0])}'")
    description = item.get("description", "")
    if not isinstance(description, str):
        raise refuse("has a description that is not text")
    emoji = item.get("emoji")
    if emoji is not None and not isinstance(emoji, str):
        raise refuse("has an emoji that is not text")
    examples = item.get("examples", [])
    if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
        raise refuse("has examples that are not a list of texts")
    return ClassDefinition(name, description, tuple(examples), emoji)


@dataclass(frozen=True, slots=True)
class Watch:
    """A watched channel: each new message in it is classified and acted on."""

    guild_id: int
    channel_id: int
    action: str
    """"react" (the class's emoji on the message) or "log" (a line in ``log_channel_id``)."""
    log_channel_id: int | None = None
    disabled: str | None = None
    """Why the watch stopped acting (a permission the bot lost), or None while it acts."""


WATCH_ACTIONS = ("react", "log")


@dataclass(frozen=True, slots=True)
class Autotag:
    """A forum whose new posts get the tags whose classes fit them."""

    guild_id: int
    forum_id: int
    mode: str
    """"apply" (the bot adds the tags) or "suggest" (it proposes them under the post)."""
    max_tags: int = 1


AUTOTAG_MODES = ("apply", "suggest")
