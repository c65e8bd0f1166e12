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
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import zsl
from bot import commands, messages, render
from bot.settings import Settings
from bot.watching import Watcher

log = logging.getLogger(__name__)

CONSOLE_GUILD_ID = 0
"""The console's classes live under this guild id, apart from every real server."""
CONSOLE_CHANNEL_ID = 0
"""The console's lines, as the one channel /watch can watch there."""

QUIT = object()
T = TypeVar("T")


class UsageError(Exception):
    """The command line could not be understood; ``str(exc)`` says how to type it."""


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed console line: the command name and its options as typed."""

    name: str
    options: dict[str, str]


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
    if name in ("quit", "exit"):
        return Command("quit", {})
    spec = commands.BY_NAME.get(name)
    if spec is None or not spec.console:
        raise UsageError(messages.console_unknown_command(head))
    known = [option.name for option in spec.options if option.console]
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
    for option in spec.words:
        if not positional:
            break
        word, positional = _first_word(positional)
        options.setdefault(option, word)
    if positional and spec.rest is not None:
        options.setdefault(spec.rest, _unquote(positional))
    return Command(name, options)


def _option_pattern(known: list[str]) -> re.Pattern[str]:
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


def _values(spec: commands.Command, typed: dict[str, str]) -> dict[str, commands.Value | None]:
    """The typed options as the command's values; what was left out takes its default.

    Raises:
        UsageError: a number or yes/no option got something else.
    """
    values = {option.name: option.default for option in spec.options}
    flags = {option.name for option in spec.options if option.kind is bool and option.console}
    for option in spec.options:
        raw = typed.get(option.name)
        if raw is None or not option.console:
            continue
        word = raw.strip().lower()
        if option.kind is not str and word in flags:
            values[word] = True  # "/threshold reset": a yes/no option typed as its name
        else:
            values[option.name] = _convert(option, raw)
    return values


def _convert(option: commands.Option, raw: str) -> commands.Value:
    if option.kind is str:
        return raw
    if option.kind is commands.Upload:
        return _upload(Path(raw.strip()).expanduser())
    word = raw.strip().lower()
    try:
        if option.kind is bool:
            if word not in _YES + _NO:
                raise ValueError(word)
            return word in _YES
        if option.kind is int or option.kind is float:
            return option.kind(word)
    except ValueError:
        raise UsageError(messages.console_bad_value(option.name, option.kind, raw)) from None
    raise TypeError(f"the console cannot read an option of type {option.kind.__name__}")


def _upload(path: Path) -> commands.Upload:
    """The file at ``path``, handed over as a member attaches one on Discord.

    Raises:
        UsageError: there is no readable file there.
    """
    try:
        size = path.stat().st_size
    except OSError:
        raise UsageError(messages.console_no_file(str(path))) from None

    async def read() -> bytes:
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError:
            raise UsageError(messages.console_no_file(str(path))) from None

    return commands.Upload(path.name, size, read)


_YES = ("yes", "true", "on", "1")
_NO = ("no", "false", "off", "0")


class _ConsoleFront:
    """The console shows text as it is and answers when the work is done. Its lines are one
    channel, which /watch watches: the person at the console reads them anyway."""

    channel_id = CONSOLE_CHANNEL_ID
    reads_messages = True

    def show(self, text: str, limit: int) -> str:
        return text

    def lacks(self, channel_id: int, permissions: tuple[str, ...]) -> tuple[str, ...]:
        return ()

    def channel(self, channel_id: int) -> str:
        return messages.CONSOLE_CHANNEL

    def forum_tags(self, forum_id: int) -> tuple[str, ...]:
        return ()  # the console has no forums

    async def defer(self) -> None:
        return None

    async def in_time(self, work: Coroutine[Any, Any, T]) -> T:
        return await work


class Console:
    """Runs parsed commands against a service and returns the text to print."""

    def __init__(
        self,
        service: zsl.ZeroShotService,
        guild_id: int = CONSOLE_GUILD_ID,
        settings: Settings | None = None,
    ) -> None:
        self.service = service
        self.guild_id = guild_id
        self.settings = settings or Settings()
        self.watcher = Watcher(service, self.settings.auto_actions_per_minute)

    async def execute(self, line: str) -> str | object:
        """The answer to one line, or ``QUIT``. Expected failures come back as their sentence."""
        try:
            command = parse(line)
            if command.name == "quit":
                return QUIT
            spec = commands.BY_NAME[command.name]
            values = _values(spec, command.options)
            # The person at the console runs the bot: they may use every command.
            front = _ConsoleFront()
            call = commands.Call(
                self.service, self.guild_id, values, True, front, self.settings, self.watcher
            )
            try:
                answer = await spec.run(call)
            except commands.MissingOptionError:
                raise UsageError(messages.console_usage(commands.usage(spec))) from None
            if not line.lstrip().startswith("/"):  # a line as a message of the watched channel
                watched = await self._watched(line.strip())
                return _text(answer) + ("" if watched is None else "\n" + watched)
            return _text(answer)
        except (UsageError, commands.RefusalError, zsl.ZslError) as exc:
            return messages.error_text(exc) if isinstance(exc, zsl.ZslError) else str(exc)
        except Exception:
            incident = secrets.token_hex(4)
            log.exception("incident %s: console command %r failed", incident, line)
            return messages.unexpected_error(incident)

    async def _watched(self, text: str) -> str | None:
        """What a watch of the console's lines does with ``text``, as a line."""
        watch = self.watcher.active(CONSOLE_CHANNEL_ID)
        if watch is None or watch.guild_id != self.guild_id:
            return None
        action = await self.watcher.decide(watch, text)
        if action is None:
            return None
        if watch.action == "react":
            return messages.console_watch_react(action.emoji, action.class_name)
        return messages.console_watch_log(action.class_name, action.confidence)


def _text(answer: commands.Answer) -> str:
    """An answer as the console prints it."""
    match answer:
        case commands.Said(text):
            return text
        case commands.Classified(result):
            return render.result_text(result)
        case commands.ClassList(definitions):
            return render.classes_text(definitions)
        case commands.Examples(definition):
            lines = (f"  {i}. {text}" for i, text in enumerate(definition.examples, start=1))
            return "\n".join(lines) or messages.NO_EXAMPLES
        case commands.Help():
            return commands.console_help()
        case commands.File(content=content):
            return content
        case _:  # votes: the console takes none, so it shows none
            raise TypeError(f"the console cannot show {answer!r}")


def repl(runner: asyncio.Runner, console: Console, stdin: TextIO, stdout: TextIO) -> None:
    """Read lines until /quit or end of input and print each answer.

    Reading happens outside the event loop, so Ctrl+C at the prompt simply ends the console.
    """
    interactive = stdin.isatty()
    runner.run(console.watcher.load())
    count = len(runner.run(console.service.classes(console.guild_id)))
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
    zsl.configure_process()
    try:
        vectors = zsl.load_vectors(settings.model, cache_dir=settings.cache_dir)
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
                repl(runner, Console(service, settings=settings), sys.stdin, sys.stdout)
            except KeyboardInterrupt:
                print(messages.CONSOLE_BYE, file=sys.stdout, flush=True)
            finally:
                runner.run(service.close())
    except zsl.ZslError as exc:
        print(messages.error_text(exc), file=sys.stderr)
        return 2
    return 0
