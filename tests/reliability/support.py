"""Shared helpers for the reliability tests: nasty text, plain-message checks, timeouts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from hypothesis import strategies as st

from zsl import ZslError

T = TypeVar("T")

CALL_SECONDS = 30.0
"""A call that takes longer has hung (generous: the CI machine is shared and noisy)."""

# Words every model of the tests knows (the tiny model's topic words; GloVe knows them too).
KNOWN = [
    "game",
    "song",
    "vote",
    "team",
    "band",
    "election",
    "football",
    "goal",
    "album",
    "concert",
    "minister",
    "sports",
    "music",
    "politics",
    "the",
    "a",
    "and",
    "is",
]

PIECES = (
    # Discord markup, links, mentions, emoji
    "https://example.com/a?b=c#d",
    "www.example.org/x",
    "<@123456789012345678>",
    "<@!1>",
    "<@&2>",
    "<#3>",
    "</classify:123>",
    "<t:1700000000:R>",
    "<:party_parrot:123456>",
    "<a:dance:1>",
    "@everyone",
    "@here",
    "**bold**",
    "__under__",
    "~~strike~~",
    "||spoiler||",
    "> quote",
    "# heading",
    "-# small",
    "[link](https://x.y)",
    "`inline code`",
    "```py\nprint('hi')\n```",
    "```",
    "``",
    # SQL-looking text
    "'; DROP TABLE classes; --",
    '" OR 1=1 --',
    "Robert'); DELETE FROM guild_settings;--",
    "%s %d {} {0} $1",
    # Unicode trouble: zero-width, direction marks, combining marks, emoji, controls
    "\u200b",
    "\u200c\u200d",
    "\ufeff",
    "\u202e",
    "\u2066\u2069",
    "\u05e9\u05dc\u05d5\u05dd",  # RTL letters
    "\u0627\u0644\u0633\u0644\u0627\u0645",
    "e\u0301\u0301\u0301",
    "Z\u0351\u0352\u0353\u0354",
    "\U0001f600",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f1fa\U0001f1f8",
    "\x00",
    "\x07",
    "\x1b[31m",
    "\r\n",
    "\u2028",
    "\t",
    "\ud800",  # a lone surrogate
    "\udfff",
    "\ue000",  # private use
    "\uffff",
    "\uff33\uff30\uff2f\uff32\uff34\uff33",  # fullwidth SPORTS
    "\u00a0",
    "\u3000",
    "don't",
    "it's",
    "e-sports",
    "rock\u2019n\u2019roll",
)


def piece() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(KNOWN),
        st.sampled_from(PIECES),
        st.text(max_size=12),
        st.text(st.characters(codec=None), max_size=6),  # includes surrogates
    )


@st.composite
def nasty_text(draw: st.DrawFn, max_pieces: int = 12) -> str:
    """Chat-like text made of known words, markup, links, SQL and Unicode trouble."""
    parts = draw(st.lists(piece(), max_size=max_pieces))
    separators = draw(st.lists(st.sampled_from(["", " ", "  ", "\n", "\t"]), min_size=len(parts)))
    return "".join(p + s for p, s in zip(parts, separators, strict=False))


AWKWARD_UNITS = (*PIECES, "a", "a'", "a-", "<@", "<:a:", "```a", "`a", "http://", "</a", "x" * 50)


def huge_text(max_repeat: int = 1_000) -> st.SearchStrategy[str]:
    """Long repetitions of one awkward piece (backtracking and size trouble).

    Megabyte inputs are tried too, but as a few fixed cases (test_fuzz.py): each costs a
    noticeable fraction of a second, too much for thousands of examples.
    """
    return st.builds(
        lambda unit, count: unit * count,
        st.sampled_from(AWKWARD_UNITS),
        st.integers(min_value=1, max_value=max_repeat),
    )


def any_text(max_pieces: int = 12) -> st.SearchStrategy[str]:
    return st.one_of(
        nasty_text(max_pieces),
        st.text(),
        st.text(st.characters(codec=None)),
        huge_text(),
        st.just(""),
    )


FORBIDDEN_IN_MESSAGES = ("Traceback", "Errno", "codec", "object at 0x", "<class ", "sqlite3.")


def assert_plain(exc: BaseException) -> None:
    """``exc`` is a ZslError whose message is one plain, bounded sentence or two."""
    assert isinstance(exc, ZslError), f"{type(exc).__name__} escaped: {exc!r}"
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} has an empty message"
    assert "\n" not in message, f"not one line: {message!r}"
    assert "\r" not in message, f"not one line: {message!r}"
    assert len(message) <= 600, f"{len(message)} characters: {message[:200]!r}..."
    assert message.isprintable(), f"unprintable characters in {message!r}"
    assert message.rstrip()[-1] in ".!?", f"not a sentence: {message!r}"
    for word in FORBIDDEN_IN_MESSAGES:
        assert word not in message, f"internals ({word}) in {message!r}"


def within(seconds: float, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a daemon thread; fail if it has not returned after ``seconds``."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise AssertionError(f"{getattr(fn, '__name__', fn)} hung for {seconds} s on {args!r:.200}")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


class Loop:
    """One event loop for a whole module, so a service can be reused across examples."""

    def __init__(self) -> None:
        self._runner = asyncio.Runner()

    def run(self, awaitable: Awaitable[T], seconds: float = CALL_SECONDS) -> T:
        async def guarded() -> T:
            try:
                return await asyncio.wait_for(awaitable, seconds)
            except TimeoutError:
                raise AssertionError(f"a call hung for {seconds} s") from None

        return self._runner.run(guarded())

    def close(self) -> None:
        self._runner.close()
