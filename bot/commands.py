"""Every bot command, described once: its options, who may run it, the service call, the answer.

The cog (``bot/cogs/zeroshot.py``) turns each entry of ``COMMANDS`` into a Discord slash
command and the console (``bot/console.py``) into a typed command. Both run the same ``run``
and show its answer their own way (an embed or plain text). A new command is an entry here with
its ``run`` function, and its sentences in ``bot/messages.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import zsl
from bot import messages
from bot.settings import Settings
from bot.watching import Watcher, tag_key

MAX_TEXT = 4000  # Discord's own cap on a text option; the configured limit is checked by the core
MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_TOP = 10
MAX_EMOJI = 64  # a server emoji <a:name:id> with a 32-character name, or a long Unicode sequence

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Upload:
    """A file a member hands to a command (an attachment on Discord, a path in the console)."""

    filename: str
    size: int
    """Bytes, as the front knows before reading."""
    read: Callable[[], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel of the server picked in an option (Discord only)."""

    id: int


@dataclass(frozen=True, slots=True)
class Forum:
    """A forum channel of the server picked in an option (Discord only)."""

    id: int


Value = str | int | float | bool | Upload | Channel | Forum
V = TypeVar("V", str, int, float, bool, Upload, Channel, Forum)


class RefusalError(Exception):
    """An expected refusal whose message (from ``bot.messages``) is shown as it is."""


class MissingOptionError(Exception):
    """A command ran without an option it needs (only the console lets that happen)."""


class Front(Protocol):
    """What a command may ask of the place it runs in: Discord or the console."""

    def show(self, text: str, limit: int) -> str:
        """User text made safe to show, at most about ``limit`` characters."""
        ...

    async def defer(self) -> None:
        """The answer may take a while (a store write): acknowledge now."""
        ...

    async def in_time(self, work: Coroutine[Any, Any, T]) -> T:
        """The result of ``work``, acknowledging meanwhile if it takes long."""
        ...

    @property
    def channel_id(self) -> int:
        """The channel the command runs in."""
        ...

    @property
    def reads_messages(self) -> bool:
        """Whether the bot gets members' messages to act on (Discord: the intent is on)."""
        ...

    def lacks(self, channel_id: int, permissions: tuple[str, ...]) -> tuple[str, ...]:
        """Which of ``permissions`` (discord.Permissions names) the bot lacks in a channel,
        as far as the front can tell."""
        ...

    def channel(self, channel_id: int) -> str:
        """How a channel is named in an answer."""
        ...

    def forum_tags(self, forum_id: int) -> tuple[str, ...]:
        """The names of the tags a forum offers (none where the front cannot tell)."""
        ...


@dataclass(frozen=True, slots=True)
class Call:
    """One run of a command: its option values, the server, and the front it runs in."""

    service: zsl.ZeroShotService
    guild_id: int
    values: Mapping[str, Value | None]
    admin: bool
    front: Front
    settings: Settings = field(default_factory=Settings)
    watcher: Watcher | None = None

    def get(self, name: str, kind: type[V]) -> V | None:
        """The option's value, or None when it was left out."""
        value = self.values.get(name)
        if value is None:
            return None
        if kind is float and isinstance(value, int):
            value = float(value)  # Discord sends a whole number as an integer
        if not isinstance(value, kind):
            raise TypeError(f"option {name} is {type(value).__name__}, not {kind.__name__}")
        return value

    def need(self, name: str, kind: type[V]) -> V:
        """The option's value. Raises MissingOptionError when it is missing or empty."""
        value = self.get(name, kind)
        if value is None or value == "":
            raise MissingOptionError(name)
        return value


# -- answers: what a command says, before a front shows it ----------------------------------------


@dataclass(frozen=True, slots=True)
class Said:
    text: str


@dataclass(frozen=True, slots=True)
class Autotagged:
    """/autotag's answer, and the forum whose tags without a class it offers to create."""

    text: str
    forum_id: int
    untaught: int
    """How many of the forum's tags have no class yet."""


@dataclass(frozen=True, slots=True)
class Classified:
    result: zsl.Classification
    text: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ClassList:
    definitions: tuple[zsl.ClassDefinition, ...]
    page: int


@dataclass(frozen=True, slots=True)
class Examples:
    definition: zsl.ClassDefinition


@dataclass(frozen=True, slots=True)
class Votes:
    votes: tuple[zsl.Vote, ...]


@dataclass(frozen=True, slots=True)
class Help:
    admin: bool


@dataclass(frozen=True, slots=True)
class File:
    """A document to hand over: an attachment on Discord, printed in the console."""

    filename: str
    content: str
    caption: str


Answer = Said | Classified | ClassList | Examples | Votes | Help | File | Autotagged

REACT_NEEDS = ("view_channel", "add_reactions", "read_message_history")
"""What the bot needs in a watched channel to react to its messages."""
WATCHED_NEEDS = ("view_channel",)
"""What the bot needs in a watched channel whose lines go to a log channel."""
LOG_NEEDS = ("view_channel", "send_messages")
TAG_NEEDS = {"apply": ("view_channel", "manage_threads"), "suggest": ("view_channel",)}
"""What the bot needs in a forum to tag its posts, or to suggest tags (Send Messages in
Threads: a member's post is a thread the bot writes in)."""
TAG_NEEDS_SUGGEST = ("send_messages_in_threads",)
MAX_FORUM_TAGS = 5
"""Discord's limit on the tags of one forum post."""
"""What the bot needs in a log channel to write to it."""


# -- the table's shape ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    kind: (
        type[str]
        | type[int]
        | type[float]
        | type[bool]
        | type[Upload]
        | type[Channel]
        | type[Forum]
    )
    description: str
    required: bool = False
    default: Value | None = None
    low: int | float | None = None
    """Strings: the shortest length; numbers: the smallest value."""
    high: int | float | None = None
    class_name: bool = False
    """Autocompletes the server's class names."""
    choices: tuple[str, ...] = ()
    """The only values Discord offers (strings)."""
    console: bool = True
    """The console offers it too (it has no "private" answers)."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    description: str
    run: Callable[[Call], Awaitable[Answer]]
    options: tuple[Option, ...] = ()
    admin: bool = False
    """Only members with Manage Server may run it."""
    public: bool = False
    """The answer is for the whole channel unless the member picks ``private:``."""
    cooldown: bool = False
    """Limited to one use per CLASSIFY_COOLDOWN_SECONDS per member."""
    words: tuple[str, ...] = ()
    """Console: options typed as one word (or quoted) before the rest of the line."""
    rest: str | None = None
    """Console: the option that takes the rest of the line."""
    console: bool = True
    """The console offers it (votes come from Discord's buttons only)."""


# -- what each command does -----------------------------------------------------------------------


async def _classify(call: Call) -> Answer:
    text = call.need("text", str)
    top = call.need("top", int)
    result = await call.front.in_time(call.service.classify(call.guild_id, text, top_k=top))
    return Classified(result, text)


async def _classes(call: Call) -> Answer:
    definitions = await call.front.in_time(call.service.classes(call.guild_id))
    if not definitions:
        raise RefusalError(messages.NO_CLASSES)
    return ClassList(definitions, call.need("page", int))


async def _help(call: Call) -> Answer:
    return Help(call.admin)


async def _add_class(call: Call) -> Answer:
    name, description = call.need("name", str), call.get("description", str) or ""
    emoji = call.get("emoji", str)
    if emoji is not None:
        zsl.check_emoji(emoji)  # refused before the class is added
    await call.front.defer()
    definition = await call.service.add_class(call.guild_id, name, description)
    if emoji is not None:
        definition = await call.service.set_emoji(call.guild_id, definition.name, emoji)
    count = len(await call.service.classes(call.guild_id))
    return Said(messages.class_added(call.front.show(definition.name, 200), count))


async def _edit_class(call: Call) -> Answer:
    name = call.need("name", str)
    new_name, description = call.get("new_name", str), call.get("description", str)
    emoji = call.get("emoji", str)
    if new_name is None and description is None and emoji is None:
        raise RefusalError(messages.EDIT_NOTHING)
    old = await call.front.in_time(call.service.get_class(call.guild_id, name))
    old_name = old.name
    if emoji is not None and emoji.strip() not in messages.NO_EMOJI_WORDS:
        zsl.check_emoji(emoji)  # refused before anything changes
    await call.front.defer()
    definition = old
    if new_name is not None or description is not None:
        definition = await call.service.edit_class(
            call.guild_id, name, new_name=new_name, description=description
        )
    # The emoji is set on its own: given, it changes (a "none" removes it); left out, the
    # class keeps the one it had.
    if emoji is not None:
        chosen = None if emoji.strip() in messages.NO_EMOJI_WORDS else emoji
        definition = await call.service.set_emoji(call.guild_id, definition.name, chosen)
    elif old.emoji is not None and definition.emoji != old.emoji:
        definition = await call.service.set_emoji(call.guild_id, definition.name, old.emoji)
    show = call.front.show
    return Said(
        messages.class_edited(
            show(old_name, 200), show(definition.name, 200), show(definition.description, 1000)
        )
    )


async def _remove_class(call: Call) -> Answer:
    name = call.need("name", str)
    await call.front.defer()
    removed = await call.service.remove_class(call.guild_id, name)
    count = len(await call.service.classes(call.guild_id))
    return Said(messages.class_removed(call.front.show(removed.name, 200), count))


async def _threshold(call: Call) -> Answer:
    value, reset = call.get("value", float), bool(call.get("reset", bool))
    if value is not None and reset:
        raise RefusalError(messages.THRESHOLD_BOTH)
    if value is None and not reset:
        current = await call.front.in_time(call.service.threshold(call.guild_id))
        return Said(messages.threshold_shown(current, zsl.DEFAULT_THRESHOLD))
    await call.front.defer()
    chosen = await call.service.set_threshold(call.guild_id, None if reset else value)
    return Said(messages.threshold_set(chosen))


async def _add_example(call: Call) -> Answer:
    name, text = call.need("name", str), call.need("text", str)
    await call.front.defer()
    definition = await call.service.add_example(call.guild_id, name, text)
    shown = call.front.show(definition.name, 200)
    return Said(messages.example_added(shown, len(definition.examples)))


async def _examples(call: Call) -> Answer:
    name = call.need("name", str)
    return Examples(await call.front.in_time(call.service.get_class(call.guild_id, name)))


async def _remove_example(call: Call) -> Answer:
    name, number = call.need("name", str), call.need("number", int)
    class_name = (await call.front.in_time(call.service.get_class(call.guild_id, name))).name
    await call.front.defer()
    removed = await call.service.remove_example(call.guild_id, name, number)
    show = call.front.show
    return Said(
        messages.example_removed(show(class_name, 200), show(" ".join(removed.split()), 300))
    )


async def _votes(call: Call) -> Answer:
    dismiss = call.get("dismiss", int)
    # Both paths read or write the store, which may be slow or stalled: acknowledge first.
    await call.front.defer()
    if dismiss is not None:
        await call.service.dismiss_vote(call.guild_id, dismiss)
        return Said(messages.vote_dismissed(dismiss))
    return Votes(tuple(await call.service.votes(call.guild_id)))


async def _export_classes(call: Call) -> Answer:
    class_set = await call.front.in_time(call.service.class_set(call.guild_id))
    if not class_set.classes:
        raise RefusalError(messages.NO_CLASSES)
    content = zsl.dump_class_set(class_set)
    return File(
        messages.EXPORT_FILENAME, content, messages.classes_exported(len(class_set.classes))
    )


async def _import_classes(call: Call) -> Answer:
    upload = call.need("file", Upload)
    limit = call.settings.import_max_kb * 1024
    if upload.size > limit:
        raise RefusalError(messages.import_too_large(upload.size, limit))
    await call.front.defer()
    data = await upload.read()
    if len(data) > limit:  # the size announced may not be the size sent
        raise RefusalError(messages.import_too_large(len(data), limit))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RefusalError(messages.IMPORT_NOT_TEXT) from None
    class_set = await call.service.read_class_set(text)
    added = await call.service.import_classes(call.guild_id, class_set)
    count = len(await call.service.classes(call.guild_id))
    return Said(messages.classes_imported(len(added), count))


def _watcher(call: Call) -> Watcher:
    if call.watcher is None or not call.front.reads_messages:
        raise RefusalError(messages.INTENT_OFF)
    return call.watcher


async def _watch(call: Call) -> Answer:
    watcher = _watcher(call)
    action = call.need("action", str)
    chosen = call.get("channel", Channel)
    channel_id = call.front.channel_id if chosen is None else chosen.id
    show = call.front.channel
    if action == "off":
        await call.front.defer()
        if not await watcher.unwatch(call.guild_id, channel_id):
            raise RefusalError(messages.not_watched(show(channel_id)))
        return Said(messages.watch_off(show(channel_id)))
    if action not in zsl.WATCH_ACTIONS:
        raise RefusalError(messages.UNKNOWN_ACTION)
    # Where log lines go (the channel /watch was typed in unless one is given), and for a
    # react watch where a note goes should it have to stop.
    log_choice = call.get("log_channel", Channel)
    log_channel = None if log_choice is None else log_choice.id
    if action == "log" and log_channel is None:
        log_channel = call.front.channel_id
    needs = REACT_NEEDS if action == "react" else WATCHED_NEEDS
    missing = [(channel_id, need) for need in call.front.lacks(channel_id, needs)]
    if log_channel is not None:
        missing += [(log_channel, need) for need in call.front.lacks(log_channel, LOG_NEEDS)]
    if missing:
        raise RefusalError(messages.watch_lacks([(show(c), need) for c, need in missing]))
    definitions = await call.front.in_time(call.service.classes(call.guild_id))
    await call.front.defer()
    await watcher.watch(zsl.Watch(call.guild_id, channel_id, action, log_channel))
    no_emoji = [d.name for d in definitions if d.emoji is None] if action == "react" else []
    shown = [call.front.show(name, 100) for name in no_emoji]
    logged = None if log_channel is None else show(log_channel)
    return Said(messages.watch_set(show(channel_id), action, logged, shown))


async def _autotag(call: Call) -> Answer:
    watcher = _watcher(call)
    forum = call.need("forum", Forum)
    mode = call.need("mode", str)
    show = call.front.channel
    if mode == "off":
        await call.front.defer()
        if not await watcher.unautotag(call.guild_id, forum.id):
            raise RefusalError(messages.not_tagged(show(forum.id)))
        return Said(messages.autotag_off(show(forum.id)))
    if mode not in ("apply", "suggest"):
        raise RefusalError(messages.UNKNOWN_MODE)
    max_tags = call.need("max_tags", int)
    needs = TAG_NEEDS[mode] + (TAG_NEEDS_SUGGEST if mode == "suggest" else ())
    missing = call.front.lacks(forum.id, needs)
    if missing:
        raise RefusalError(messages.watch_lacks([(show(forum.id), need) for need in missing]))
    tags = call.front.forum_tags(forum.id)
    if not tags:
        raise RefusalError(messages.no_forum_tags(show(forum.id)))
    definitions = await call.front.in_time(call.service.classes(call.guild_id))
    await call.front.defer()
    await watcher.autotag(zsl.Autotag(call.guild_id, forum.id, mode, max_tags))
    classes = {tag_key(d.name) for d in definitions}
    untaught = [call.front.show(tag, 100) for tag in tags if tag_key(tag) not in classes]
    text = messages.autotag_set(show(forum.id), mode, max_tags, untaught)
    return Autotagged(text, forum.id, len(untaught))


async def create_tag_classes(call: Call, forum_id: int) -> Answer:
    """Create a class for each tag of a forum that has none, named and described by the tag
    (all of them or, on a refusal, none)."""
    definitions = await call.front.in_time(call.service.classes(call.guild_id))
    classes = {tag_key(d.name) for d in definitions}
    tags = [tag for tag in call.front.forum_tags(forum_id) if tag_key(tag) not in classes]
    if not tags:
        return Said(messages.TAG_CLASSES_EXIST)
    await call.front.defer()
    class_set = zsl.ClassSetFile(tuple(zsl.ClassDefinition(tag, tag) for tag in tags))
    added = await call.service.import_classes(call.guild_id, class_set)
    return Said(messages.tag_classes_created([call.front.show(d.name, 100) for d in added]))


async def _watches(call: Call) -> Answer:
    watcher = _watcher(call)
    watches = watcher.watches(call.guild_id)
    forums = watcher.autotags(call.guild_id)
    if not watches and not forums:
        return Said(messages.NO_WATCHES)
    show = call.front.channel
    lines = [
        messages.watch_line(
            show(w.channel_id),
            w.action,
            None if w.log_channel_id is None else show(w.log_channel_id),
            w.disabled,
        )
        for w in watches
    ]
    lines += [messages.autotag_line(show(a.forum_id), a.mode, a.max_tags) for a in forums]
    return Said("\n".join(lines))


# -- the table ------------------------------------------------------------------------------------


def _class_name(description: str) -> Option:
    """The ``name`` option of a command about one existing class."""
    return Option("name", str, description, required=True, low=1, high=MAX_NAME, class_name=True)


COMMANDS: tuple[Command, ...] = (
    Command(
        "classify",
        messages.CLASSIFY_DESCRIPTION,
        _classify,
        (
            Option("text", str, messages.CLASSIFY_TEXT, required=True, low=1, high=MAX_TEXT),
            Option("top", int, messages.CLASSIFY_TOP, default=3, low=1, high=MAX_TOP),
            Option("private", bool, messages.CLASSIFY_PRIVATE, default=False, console=False),
        ),
        public=True,
        cooldown=True,
        rest="text",
    ),
    Command(
        "classes",
        messages.CLASSES_DESCRIPTION,
        _classes,
        (Option("page", int, messages.CLASSES_PAGE, default=1, low=1, high=1000),),
        rest="page",
    ),
    Command("help", messages.HELP_DESCRIPTION, _help),
    Command(
        "addclass",
        messages.ADD_DESCRIPTION,
        _add_class,
        (
            Option("name", str, messages.ADD_NAME, required=True, low=1, high=MAX_NAME),
            Option(
                "description",
                str,
                messages.ADD_DESCRIPTION_OPTION,
                required=True,
                low=1,
                high=MAX_DESCRIPTION,
            ),
            Option("emoji", str, messages.ADD_EMOJI, low=1, high=MAX_EMOJI),
        ),
        admin=True,
        words=("name",),
        rest="description",
    ),
    Command(
        "editclass",
        messages.EDIT_DESCRIPTION,
        _edit_class,
        (
            _class_name(messages.EDIT_NAME),
            Option("new_name", str, messages.EDIT_NEW_NAME, low=1, high=MAX_NAME),
            Option("description", str, messages.EDIT_NEW_DESCRIPTION, low=1, high=MAX_DESCRIPTION),
            Option("emoji", str, messages.EDIT_EMOJI, low=1, high=MAX_EMOJI),
        ),
        admin=True,
        words=("name",),
        rest="description",
    ),
    Command(
        "removeclass",
        messages.REMOVE_DESCRIPTION,
        _remove_class,
        (_class_name(messages.REMOVE_NAME),),
        admin=True,
        rest="name",
    ),
    Command(
        "threshold",
        messages.THRESHOLD_DESCRIPTION,
        _threshold,
        (
            Option("value", float, messages.THRESHOLD_VALUE, low=0.0, high=1.0),
            Option("reset", bool, messages.THRESHOLD_RESET, default=False),
        ),
        admin=True,
        rest="value",
    ),
    Command(
        "addexample",
        messages.ADD_EXAMPLE_DESCRIPTION,
        _add_example,
        (
            _class_name(messages.ADD_EXAMPLE_NAME),
            Option("text", str, messages.ADD_EXAMPLE_TEXT, required=True, low=1, high=MAX_TEXT),
        ),
        admin=True,
        words=("name",),
        rest="text",
    ),
    Command(
        "examples",
        messages.EXAMPLES_DESCRIPTION,
        _examples,
        (_class_name(messages.EXAMPLES_NAME),),
        admin=True,
        rest="name",
    ),
    Command(
        "removeexample",
        messages.REMOVE_EXAMPLE_DESCRIPTION,
        _remove_example,
        (
            _class_name(messages.REMOVE_EXAMPLE_NAME),
            Option(
                "number", int, messages.REMOVE_EXAMPLE_NUMBER, required=True, low=1, high=10_000
            ),
        ),
        admin=True,
        words=("name",),
        rest="number",
    ),
    Command(
        "votes",
        messages.VOTES_DESCRIPTION,
        _votes,
        (Option("dismiss", int, messages.VOTES_DISMISS, low=1),),
        admin=True,
        console=False,
    ),
    Command(
        "exportclasses",
        messages.EXPORT_DESCRIPTION,
        _export_classes,
        admin=True,
    ),
    Command(
        "importclasses",
        messages.IMPORT_DESCRIPTION,
        _import_classes,
        (Option("file", Upload, messages.IMPORT_FILE, required=True),),
        admin=True,
        rest="file",
    ),
    Command(
        "watch",
        messages.WATCH_DESCRIPTION,
        _watch,
        (
            Option(
                "action",
                str,
                messages.WATCH_ACTION,
                required=True,
                choices=(*zsl.WATCH_ACTIONS, "off"),
            ),
            Option("channel", Channel, messages.WATCH_CHANNEL, console=False),
            Option("log_channel", Channel, messages.WATCH_LOG_CHANNEL, console=False),
        ),
        admin=True,
        rest="action",
    ),
    Command("watches", messages.WATCHES_DESCRIPTION, _watches, admin=True),
    Command(
        "autotag",
        messages.AUTOTAG_DESCRIPTION,
        _autotag,
        (
            Option("forum", Forum, messages.AUTOTAG_FORUM, required=True),
            Option(
                "mode",
                str,
                messages.AUTOTAG_MODE,
                default="apply",
                choices=("apply", "suggest", "off"),
            ),
            Option("max_tags", int, messages.AUTOTAG_MAX, default=1, low=1, high=MAX_FORUM_TAGS),
        ),
        admin=True,
        console=False,
    ),
)
BY_NAME = {command.name: command for command in COMMANDS}


# -- help, written from the table -----------------------------------------------------------------


def help_text(admin: bool) -> str:
    """/help on Discord: the member commands, and the admin ones for members who can use them."""

    def line(command: Command) -> str:
        typed = "".join(f" {o.name}:" for o in command.options if o.required)
        return f"`/{command.name}{typed}` {command.description}"

    members = [line(c) for c in COMMANDS if not c.admin]
    member_text = "\n".join([*members, *messages.HELP_MEMBER_NOTES])
    if not admin:
        return member_text
    admins = [line(c) for c in COMMANDS if c.admin]
    return "\n".join(
        [member_text, "", messages.HELP_ADMIN_TITLE, *admins, messages.HELP_ADMIN_NOTE]
    )


def usage(command: Command) -> str:
    """How to type ``command`` in the console, e.g. ``/addclass NAME DESCRIPTION...``."""
    options = [o for o in command.options if o.console]
    parts = [f"/{command.name}", *(name.upper() for name in command.words)]
    rest = next((o for o in options if o.name == command.rest), None)
    flags = [o.name for o in options if o.kind is bool]
    if rest is not None:
        shown = rest.name.upper() + ("..." if rest.kind is str else "")
        shown = " | ".join([shown, *flags])
        parts.append(shown if rest.required else f"[{shown}]")
    for option in options:
        if option.name in command.words or option is rest or option.kind is bool:
            continue
        shown = f"{option.name}: {option.name.upper()}"
        parts.append(shown if option.required else f"[{shown}]")
    return " ".join(parts)


def console_help() -> str:
    """/help in the console."""
    lines = [messages.CONSOLE_HELP_INTRO]
    for command in COMMANDS:
        if command.console:
            typed = usage(command)
            gap = "\n" + " " * 37 if len(typed) > 34 else " " * (35 - len(typed))
            lines.append(f"  {typed}{gap}{command.description}")
    lines += messages.CONSOLE_HELP_NOTES
    return "\n".join(lines)
