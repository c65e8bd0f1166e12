"""The offline console: the bot's commands typed in a terminal, answered as plain text.

    $ python -m bot --console
    > /addclass sports football match team goal
    > /classify What a goal in the last minute!

It uses the same service and store as the bot (ZSL_DATABASE_URL), under one local "server", so
it needs no Discord account and no network. Options can be given positionally or Discord-style
(``/editclass sports new_name: football description: match goal``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import secrets
import shlex
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO, TypeVar

import zsl
from bot import messages, render
from bot.settings import Settings

log = logging.getLogger(__name__)

CONSOLE_GUILD_ID = 0
"""The console's classes live under this guild id, apart from every real server."""

QUIT = object()
N = TypeVar("N", int, float)


class UsageError(Exception):
    """The command line could not be understood; ``str(exc)`` says how to type it."""


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed console line: the command name and its options."""

    name: str
    options: dict[str, str]


# command -> (option names in positional order, the last one takes the rest, usage)
_SYNTAX: dict[str, tuple[tuple[str, ...], str]] = {
    "addclass": (("name", "description"), "/addclass NAME DESCRIPTION..."),
    "classify": (("text", "top"), "/classify TEXT... [top: N]"),
    "classes": (("page",), "/classes [PAGE]"),
    "editclass": (
        ("name", "new_name", "description"),
        "/editclass NAME [new_name: NEW] [description: WORDS...]",
    ),
    "removeclass": (("name",), "/removeclass NAME"),
    "threshold": (("value",), "/threshold [VALUE | reset]"),
    "addexample": (("name", "text"), "/addexample NAME TEXT..."),
    "examples": (("name",), "/examples NAME"),
    "removeexample": (("name", "number"), "/removeexample NAME NUMBER"),
    "help": ((), "/help"),
    "quit": ((), "/quit"),
}
# Positional parsing per command: how many leading single-word (or quoted) arguments come
# before the one that takes the rest of the line.
_LEADING_WORDS = {"addclass": 1, "editclass": 1, "addexample": 1, "removeexample": 1}
_REST_OPTION = {
    "addclass": "description",
    "classify": "text",
    "classes": "page",
    "editclass": "description",
    "removeclass": "name",
    "threshold": "value",
    "addexample": "text",
    "examples": "name",
    "removeexample": "number",
}


def parse(line: str) -> Command:
    """Parse one console line. A line without a leading ``/`` is a ``/classify``.

    Raises:
        UsageError: unknown command or option, or a missing closing quote.
    """
    line = line.strip()
    if not line.startswith("/"):
        return Command("classify", {"text": line} if line else {})
    head, _, rest = line[1:].partition(" ")
    name = head.lower()
    if name == "exit":
        name = "quit"
    if name not in _SYNTAX:
        raise UsageError(messages.console_unknown_command(head))
    known, _usage = _SYNTAX[name]
    rest = rest.strip()
    options: dict[str, str] = {}
    # Discord-style "option: value" pairs; whatever comes before the first one is positional.
    # Only the command's own option names count, so "note: ..." in a text stays text.
    matches = list(_option_pattern(known).finditer(rest)) if known else []
    positional = rest[: matches[0].start()].strip() if matches else rest
    for index, match in enumerate(matches):
        option = match.group(1)
        end = matches[index + 1].start() if index + 1 < len(matches) else len(rest)
        options[option] = _unquote(rest[match.end() : end].strip())
    for _ in range(_LEADING_WORDS.get(name, 0)):
        if not positional:
            break
        word, positional = _first_word(positional)
        options.setdefault("name", word)
    if positional and name in _REST_OPTION:
        options.setdefault(_REST_OPTION[name], _unquote(positional))
    return Command(name, options)


def _option_pattern(known: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"(?:^|(?<=\s))(" + "|".join(known) + r"):(?=\s|$)")


def _first_word(text: str) -> tuple[str, str]:
    """The first word as a shell would read it (quotes group, a backslash escapes), and the
    rest of the line untouched (texts keep their apostrophes).

    Raises:
        UsageError: a quote is not closed within the line.
    """
    stream = io.StringIO(text)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        word = lexer.get_token()
    except ValueError:  # "No closing quotation" / "No escaped character"
        raise UsageError(messages.CONSOLE_UNBALANCED_QUOTE) from None
    # The lexer has consumed the word and the one whitespace character after it.
    rest = stream.read()
    raw = text[: len(text) - len(rest)].strip()
    if raw[:1] in ("'", '"') and not raw.endswith(raw[0]):
        # 'it's fun' closes its quote after "it": the name was meant to go on, so say how to
        # quote it instead of creating a class "its".
        raise UsageError(messages.CONSOLE_UNBALANCED_QUOTE)
    return word or "", rest.strip()


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


class Console:
    """Runs parsed commands against a service and returns the text to print."""

    def __init__(self, service: zsl.ZeroShotService, guild_id: int = CONSOLE_GUILD_ID) -> None:
        self.service = service
        self.guild_id = guild_id
        self._handlers: dict[str, Callable[[dict[str, str]], Awaitable[str]]] = {
            "addclass": self._add,
            "classify": self._classify,
            "classes": self._classes,
            "editclass": self._edit,
            "removeclass": self._remove,
            "threshold": self._threshold,
            "addexample": self._add_example,
            "examples": self._examples,
            "removeexample": self._remove_example,
        }

    async def execute(self, line: str) -> str | object:
        """The answer to one line, or ``QUIT``. Expected failures come back as their sentence."""
        try:
            command = parse(line)
            if command.name == "quit":
                return QUIT
            if command.name == "help":
                return messages.CONSOLE_HELP
            return await self._handlers[command.name](command.options)
        except (UsageError, zsl.ZslError) as exc:
            return messages.error_text(exc) if isinstance(exc, zsl.ZslError) else str(exc)
        except Exception:
            incident = secrets.token_hex(4)
            log.exception("incident %s: console command %r failed", incident, line)
            return messages.unexpected_error(incident)

    @staticmethod
    def _require(options: dict[str, str], command: str, *names: str) -> tuple[str, ...]:
        if any(not options.get(name) for name in names):
            raise UsageError(messages.console_usage(_SYNTAX[command][1]))
        return tuple(options[name] for name in names)

    async def _add(self, options: dict[str, str]) -> str:
        (name,) = self._require(options, "addclass", "name")
        definition = await self.service.add_class(
            self.guild_id, name, options.get("description", "")
        )
        return messages.class_added(definition.name, len(self.service.classes(self.guild_id)))

    async def _classify(self, options: dict[str, str]) -> str:
        (text,) = self._require(options, "classify", "text")
        top = _number(options.get("top", "3"), "top", int)
        result = await self.service.classify(self.guild_id, text, top_k=top)
        return render.result_text(result)

    async def _classes(self, options: dict[str, str]) -> str:
        return render.classes_text(self.service.classes(self.guild_id))

    async def _edit(self, options: dict[str, str]) -> str:
        (name,) = self._require(options, "editclass", "name")
        new_name, description = options.get("new_name"), options.get("description")
        if new_name is None and description is None:
            return messages.EDIT_NOTHING
        old_name = self.service.get_class(self.guild_id, name).name
        definition = await self.service.edit_class(
            self.guild_id, name, new_name=new_name, description=description
        )
        return messages.class_edited(old_name, definition.name, definition.description)

    async def _remove(self, options: dict[str, str]) -> str:
        (name,) = self._require(options, "removeclass", "name")
        removed = await self.service.remove_class(self.guild_id, name)
        return messages.class_removed(removed.name, len(self.service.classes(self.guild_id)))

    async def _threshold(self, options: dict[str, str]) -> str:
        raw = options.get("value", "").strip().lower()
        if not raw:
            return messages.threshold_shown(
                self.service.threshold(self.guild_id), zsl.DEFAULT_THRESHOLD
            )
        value = None if raw == "reset" else _number(raw, "The threshold", float)
        return messages.threshold_set(await self.service.set_threshold(self.guild_id, value))

    async def _add_example(self, options: dict[str, str]) -> str:
        name, text = self._require(options, "addexample", "name", "text")
        definition = await self.service.add_example(self.guild_id, name, text)
        return messages.example_added(definition.name, len(definition.examples))

    async def _examples(self, options: dict[str, str]) -> str:
        (name,) = self._require(options, "examples", "name")
        examples = self.service.get_class(self.guild_id, name).examples
        if not examples:
            return messages.NO_EXAMPLES
        return "\n".join(f"  {i}. {text}" for i, text in enumerate(examples, start=1))

    async def _remove_example(self, options: dict[str, str]) -> str:
        name, raw = self._require(options, "removeexample", "name", "number")
        text = await self.service.remove_example(
            self.guild_id, name, _number(raw, "The example number", int)
        )
        return messages.example_removed(name, text)


def _number(raw: str, what: str, kind: Callable[[str], N]) -> N:
    try:
        return kind(raw)
    except ValueError:
        raise UsageError(messages.console_bad_number(what, raw)) from None


def repl(runner: asyncio.Runner, console: Console, stdin: TextIO, stdout: TextIO) -> None:
    """Read lines until /quit or end of input and print each answer.

    Reading happens outside the event loop, so Ctrl+C at the prompt simply ends the console.
    """
    interactive = stdin.isatty()
    count = len(console.service.classes(console.guild_id))
    start = messages.console_ready(count) if count else messages.CONSOLE_START
    print(messages.CONSOLE_BANNER, start, sep="\n", file=stdout, flush=True)
    while True:
        if interactive:
            print("> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line:
            break
        if not line.strip():
            continue
        answer = runner.run(console.execute(line))
        if answer is QUIT:
            break
        print(answer, file=stdout, flush=True)
    print(messages.CONSOLE_BYE, file=stdout, flush=True)


def main(settings: Settings) -> int:
    """``python -m bot --console``: load the model, open the store, read commands."""
    print(messages.CONSOLE_LOADING, file=sys.stderr, flush=True)
    try:
        vectors = zsl.load_vectors(settings.model)
        with asyncio.Runner() as runner:
            service = runner.run(
                zsl.ZeroShotService.open(
                    vectors,
                    settings.database_url,
                    limits=settings.limits,
                    store_timeout=settings.store_timeout_seconds,
                )
            )
            try:
                repl(runner, Console(service), sys.stdin, sys.stdout)
            except KeyboardInterrupt:
                print(messages.CONSOLE_BYE, file=sys.stdout, flush=True)
            finally:
                runner.run(service.close())
    except zsl.ZslError as exc:
        print(messages.error_text(exc), file=sys.stderr)
        return 2
    return 0
