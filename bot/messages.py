"""Every sentence a user of the bot or the console can read, in one place.

Texts that echo user input take it already escaped (see ``bot.render.escape``).
"""

from __future__ import annotations

import logging

import zsl

log = logging.getLogger(__name__)

# -- command and option descriptions (Discord shows these; 100 characters at most) -------------

CLASSIFY_DESCRIPTION = "Sort a text into this server's classes."
CLASSIFY_TEXT = "The text to classify."
CLASSIFY_TOP = "How many classes to show (default 3)."
CLASSIFY_PRIVATE = "Show the result only to you."
CONTEXT_MENU_NAME = "Classify message"
ADD_DESCRIPTION = "Add a class: a name and a few words that describe it."
ADD_NAME = "The class name, e.g. sports."
ADD_DESCRIPTION_OPTION = "A few describing words, e.g. football match team goal."
EDIT_DESCRIPTION = "Rename a class or change its description."
EDIT_NAME = "The class to change."
EDIT_NEW_NAME = "Its new name (leave out to keep it)."
EDIT_NEW_DESCRIPTION = "Its new description (leave out to keep it)."
REMOVE_DESCRIPTION = "Remove a class."
REMOVE_NAME = "The class to remove."
CLASSES_DESCRIPTION = "List this server's classes."
CLASSES_PAGE = "Which page of the list to show."
THRESHOLD_DESCRIPTION = "Show or set how sure the bot must be before it names a class."
THRESHOLD_VALUE = "A confidence between 0 and 1; leave out to see the current one."
THRESHOLD_RESET = "Go back to the default threshold."
ADD_EXAMPLE_DESCRIPTION = "Teach a class: add a text that belongs to it."
ADD_EXAMPLE_NAME = "The class the text belongs to."
ADD_EXAMPLE_TEXT = "A text that belongs to the class."
EXAMPLES_DESCRIPTION = "List the example texts a class has learned."
EXAMPLES_NAME = "The class whose examples to show."
REMOVE_EXAMPLE_DESCRIPTION = "Make a class forget one of its examples."
REMOVE_EXAMPLE_NAME = "The class to change."
REMOVE_EXAMPLE_NUMBER = "The example's number in /examples."
VOTES_DESCRIPTION = "Review members' feedback on results (newest first)."
VOTES_DISMISS = "Forget the vote with this number once you have dealt with it."
EXPORT_DESCRIPTION = "Download this server's classes as a JSON file."
ADD_EMOJI = "An emoji for the class: watched channels' messages of it get it as a reaction."
EDIT_EMOJI = "Its new emoji (none removes it; leave out to keep it)."
WATCH_DESCRIPTION = "Sort a channel's new messages by class: a reaction or a log line."
WATCH_ACTION = "react: the class's emoji on the message; log: a line in the log channel; off: stop."
WATCH_CHANNEL = "The channel to watch (default: this one)."
WATCH_LOG_CHANNEL = "Where log lines go (default: this channel)."
WATCHES_DESCRIPTION = "List the watched channels and tagged forums, and what the bot does there."
AUTOTAG_DESCRIPTION = "Tag a forum's new posts with the tags whose classes fit them."
AUTOTAG_FORUM = "The forum whose new posts get tags."
AUTOTAG_MODE = "apply: the bot adds the tags; suggest: it proposes them with a button; off: stop."
AUTOTAG_MAX = "How many tags a post gets at most (1-5, default 1)."
IMPORT_DESCRIPTION = "Add the classes of a file from /exportclasses: all of them or none."
IMPORT_FILE = "A JSON file made by /exportclasses (here or on another server)."
HELP_DESCRIPTION = "Show what this bot can do and how to use it."

# -- feedback buttons under a result ------------------------------------------------------------

FEEDBACK_RIGHT = "Right"
FEEDBACK_WRONG = "Wrong, it is..."
FEEDBACK_WHICH = "It is..."
FEEDBACK_EXPIRED = "These buttons have expired; classify the text again to give feedback."

# -- refusals -----------------------------------------------------------------------------------

DM_REFUSED = (
    "Classes belong to a server, so this works only in a server channel. Run the command there."
)
MISSING_PERMISSION = (
    "Only members with the Manage Server permission can change classes. "
    "Ask a server admin to do it."
)
NO_MESSAGE_TEXT = (
    "That message has no text to classify (only attachments or embeds). Pick one with text."
)
EDIT_NOTHING = "Tell me what to change: give a new name, a new description or an emoji."
NO_EMOJI_WORDS = ("none", "off", "-")
"""What /editclass emoji: takes for "no emoji"."""
THRESHOLD_BOTH = "Give a value or reset, not both."


def error_text(exc: zsl.ZslError) -> str:
    """An expected failure of the core as the bot and the console say it.

    The core's own sentences are neutral; here they name the commands that help next. The one
    place that words them (httpx's exception mapping): exact types, so a subclass such as
    ConfusableClassError keeps its own sentence. User input is shown as the core shows it.
    """
    if type(exc) is zsl.NoClassesError and exc.dormant:
        names = ", ".join(f"'{zsl.shown_input(n)}'" for n in exc.dormant[:5])
        return (
            f"None of this server's classes can be used with the current model, which knows "
            f"none of their words ({names}). An admin can describe them again with /editclass."
        )
    if type(exc) is zsl.NoClassesError:
        return "This server has no classes yet. An admin can add one with /addclass."
    if type(exc) is zsl.ClassNotFoundError:
        return (
            f"There is no class named '{zsl.shown_input(exc.name)}'. /classes lists the existing "
            "ones."
        )
    if type(exc) is zsl.DuplicateClassError:
        return (
            f"A class named '{zsl.shown_input(exc.name)}' already exists. Pick another name, or "
            "change it with /editclass."
        )
    if type(exc) is zsl.ClassLimitError:
        return (
            f"This server already has {exc.limit} classes, the maximum. Remove one with "
            "/removeclass first."
        )
    if type(exc) is zsl.ExampleLimitError:
        return (
            f"The class '{zsl.shown_input(exc.name)}' already has {exc.limit} examples, the "
            "maximum. Remove one with /removeexample first."
        )
    if type(exc) is zsl.ExampleNotFoundError:
        return (
            f"The class '{zsl.shown_input(exc.name)}' has no example number {exc.number}; it has "
            f"{exc.count}. /examples lists them."
        )
    if type(exc) is zsl.VoteNotFoundError:
        return f"There is no vote number {exc.number}. /votes lists them."
    if type(exc) is zsl.ClassFileError:
        return "Nothing was imported. " + _class_file_problem(exc)
    if type(exc) is zsl.InvalidTextError and exc.length == 0:
        return "There is no text to classify. Give me a sentence or two."
    return str(exc)


def _class_file_problem(exc: zsl.ClassFileError) -> str:
    """What is wrong with a class of an import file, worded for the file, not for /addclass."""
    cause = exc.cause
    if exc.number is None or exc.name is None or cause is None:
        return str(exc)  # the file's shape, two classes of the file alike, too many classes
    which = f"Class {exc.number} of the file ('{zsl.shown_input(exc.name)}')"
    if type(cause) is zsl.ConfusableClassError:
        return (
            f"{which} looks the same as the class '{zsl.shown_input(cause.existing)}'. Rename "
            "it in the file, or remove one of them, then import again."
        )
    if type(cause) is zsl.DuplicateClassError:
        return (
            f"{which} is already a class of this server. Remove it from the file, or remove "
            "the server's class with /removeclass, then import again."
        )
    if type(cause) is zsl.ExampleLimitError:
        return (
            f"{which} has more than {cause.limit} examples, the most a class keeps. Remove some "
            "from the file, then import again."
        )
    return f"{which}: {cause}"


def cooldown(retry_after: float) -> str:
    return f"You are classifying quickly. Try again in {retry_after:.1f} seconds."


def vote_cooldown(retry_after: float) -> str:
    return f"You are giving feedback quickly. Try again in {retry_after:.1f} seconds."


def unexpected_error(incident: str) -> str:
    return (
        f"Something went wrong on my side (incident {incident}). "
        "Try again in a minute; if it keeps happening, give the bot's operator this code."
    )


# -- confirmations ------------------------------------------------------------------------------


def _classes(count: int) -> str:
    return "1 class" if count == 1 else f"{count} classes"


def class_added(name: str, count: int) -> str:
    return f'Added the class "{name}". This server now has {_classes(count)}.'


def class_edited(old_name: str, name: str, description: str) -> str:
    shown = description or NO_DESCRIPTION
    if old_name == name:
        return f'Updated the class "{name}": {shown}'
    return f'Renamed the class "{old_name}" to "{name}": {shown}'


def class_removed(name: str, count: int) -> str:
    return f'Removed the class "{name}". This server now has {_classes(count)}.'


def _percent(value: float) -> str:
    # Adding 0.0 turns -0.0 (typed as "-0") into 0.0, so it never shows as "-0%".
    return f"{value + 0.0:.0%}"


def threshold_shown(value: float, default: float) -> str:
    return (
        f"The bot names a class only when it is at least {_percent(value)} sure "
        f"(the default is {_percent(default)}). Admins can change it with /threshold value:."
    )


def threshold_set(value: float) -> str:
    return f"From now on the bot names a class only when it is at least {_percent(value)} sure."


def example_added(name: str, count: int) -> str:
    return (
        f'Thanks! "{name}" learned from this text; it now has '
        f"{'1 example' if count == 1 else f'{count} examples'}. /examples lists them."
    )


def example_removed(name: str, text: str) -> str:
    return f'The class "{name}" forgot the example: {text}'


VOTE_KEPT = (
    "Thanks! Your feedback is kept for this server's admins, who can teach the class with it "
    "(/votes)."
)
NO_EXAMPLES = "This class has no examples yet. Admins teach it with the buttons under a result "
NO_EXAMPLES += "or with /addexample."
NO_VOTES = "Nobody has given feedback on a result yet."
EXAMPLES_TITLE = "Examples of {name}"
VOTES_TITLE = "Feedback from members"


def vote_line(number: int, user_id: int, predicted: str, suggested: str | None, text: str) -> str:
    verdict = f"right: {predicted}" if suggested is None else f"{predicted} \u2192 {suggested}"
    return f"`#{number}` <@{user_id}> {verdict}: {text}"


def vote_dismissed(number: int) -> str:
    return f"Forgot vote #{number}."


# -- /help (the command lines come from bot.commands) ----------------------------------------------

HELP_TITLE = "Zero-shot classifier: commands"
HELP_MEMBER_NOTES = (
    "**Classify message** (a message's menu > Apps) sort someone's message",
    "Under a result, **Right** and **Wrong, it is...** tell the admins how the bot did.",
)
HELP_ADMIN_TITLE = "**For members with Manage Server**"
HELP_ADMIN_NOTE = "Your **Right** / **Wrong** under a result teaches the class at once."


# -- watched channels ------------------------------------------------------------------------------

INTENT_OFF = (
    "Watching channels needs Discord's Message Content intent, which is off for this bot. The "
    "bot's operator can turn it on under Bot > Privileged Gateway Intents at "
    "https://discord.com/developers/applications, set MESSAGE_CONTENT_INTENT=true and restart "
    "the bot."
)
UNKNOWN_ACTION = "The action must be react, log or off."
NO_WATCHES = "No channel is watched. Start with /watch action: react (or log)."
PERMISSION_NAMES = {
    "view_channel": "View Channel",
    "manage_threads": "Manage Threads",
    "send_messages_in_threads": "Send Messages in Threads",
    "add_reactions": "Add Reactions",
    "read_message_history": "Read Message History",
    "send_messages": "Send Messages",
}


def _permissions(needs: list[str]) -> str:
    return ", ".join(PERMISSION_NAMES.get(need, need) for need in needs)


def watch_lacks(missing: list[tuple[str, str]]) -> str:
    """The refusal of /watch when the bot lacks permissions: (channel, permission) pairs."""
    by_channel: dict[str, list[str]] = {}
    for channel, need in missing:
        by_channel.setdefault(channel, []).append(need)
    parts = [f"{_permissions(needs)} in {channel}" for channel, needs in by_channel.items()]
    return (
        f"I cannot do that yet: I am missing {'; '.join(parts)}. Give me those permissions in the "
        "channel's settings (Edit Channel > Permissions), then run /watch again."
    )


def watch_set(channel: str, action: str, log_channel: str | None, no_emoji: list[str]) -> str:
    if action == "log":
        done = (
            f"From now on each new message in {channel} that fits a class gets a line in "
            f"{log_channel}."
        )
    else:
        done = (
            f"From now on each new message in {channel} that fits a class gets the class's "
            "emoji as a reaction."
        )
    if no_emoji:
        names = ", ".join(f'"{name}"' for name in no_emoji[:10])
        done += f" These classes have no emoji yet: {names}. Give them one with /editclass emoji:."
    return done


def watch_off(channel: str) -> str:
    return f"{channel} is no longer watched."


def not_watched(channel: str) -> str:
    return f"{channel} is not watched. /watches lists the watched channels."


def watch_line(channel: str, action: str, log_channel: str | None, disabled: str | None) -> str:
    what = f"log lines in {log_channel}" if action == "log" else "reactions"
    line = f"{channel}: {what}"
    if disabled is not None:
        line += f" (stopped: I lost {disabled}; fix it, then run /watch again)"
    return line


def watch_log_line(class_name: str, confidence: float, channel: str, link: str) -> str:
    return f"**{class_name}** {_percent(confidence)} in {channel}: {link}"


def watch_disabled_note(channel: str, missing: str) -> str:
    return (
        f"I stopped watching {channel}: I no longer have {missing} there. Give it back in the "
        "channel's settings, then run /watch again."
    )


def console_watch_react(emoji: str | None, class_name: str) -> str:
    return f"[watch] reacts {emoji}" if emoji else f"[watch] {class_name} has no emoji: no reaction"


def console_watch_log(class_name: str, confidence: float) -> str:
    return f"[watch] log: **{class_name}** {_percent(confidence)}"


CONSOLE_CHANNEL = "the console"
UNKNOWN_MODE = "The mode must be apply, suggest or off."
TAGS_BUTTON = "Apply these tags"


def not_tagged(forum: str) -> str:
    return f"{forum} gets no tags from me. /watches lists the forums that do."


def autotag_off(forum: str) -> str:
    return f"New posts in {forum} no longer get tags from me."


def no_forum_tags(forum: str) -> str:
    return (
        f"{forum} has no tags yet. Add tags in the forum's settings (Edit Channel > Tags), with "
        "the names of classes, then run /autotag again."
    )


def autotag_set(forum: str, mode: str, max_tags: int, untaught: list[str]) -> str:
    how = "I add" if mode == "apply" else "I suggest, under the post,"
    count = "the tag" if max_tags == 1 else f"up to {max_tags} tags"
    text = f"From now on {how} {count} whose classes fit each new post in {forum}."
    if untaught:
        names = ", ".join(f'"{name}"' for name in untaught[:10])
        text += (
            f" These tags have no class yet: {names}. Create them with the button below, or "
            "each with /addclass name: (the tag's name) description: (a few words about it)."
        )
    return text


def autotag_line(forum: str, mode: str, max_tags: int) -> str:
    how = "tags added" if mode == "apply" else "tags suggested"
    return f"{forum}: {how}, up to {max_tags} a post"


def tags_suggested(tags: list[str]) -> str:
    return f"Suggested tags: {', '.join(tags)}. The post's author or a moderator can apply them."


def tags_applied(tags: list[str]) -> str:
    return f"Applied the tags: {', '.join(tags)}."


CREATE_TAG_CLASSES = "Create these classes from the tag names"
TAG_CLASSES_EXIST = "Every tag of the forum has a class already."


def tag_classes_created(names: list[str]) -> str:
    shown = ", ".join(f'"{name}"' for name in names)
    return (
        f"Created the classes {shown}, each described by its name. Describe them better with "
        "/editclass description: so that posts find them."
    )


TAGS_NOT_YOURS = "Only the post's author or a member who can manage threads can apply its tags."
TAGS_EXPIRED = "These tags are no longer offered by the forum. Pick tags by hand."


# -- /exportclasses -------------------------------------------------------------------------------

EXPORT_FILENAME = "classes.json"


def classes_exported(count: int) -> str:
    return f"This server's {_classes(count)}, with their emoji, examples and the threshold."


def classes_imported(added: int, count: int) -> str:
    return f"Imported {_classes(added)}. This server now has {_classes(count)}."


def import_too_large(size: int, limit: int) -> str:
    return (
        f"That file has {size:,} bytes; an import takes at most {limit:,}. Export fewer classes "
        "or examples, or ask the bot's operator to raise IMPORT_MAX_KB."
    )


IMPORT_NOT_TEXT = (
    "That file is not a text file. Attach the JSON file that /exportclasses made, unchanged."
)


# -- results ------------------------------------------------------------------------------------

RESULT_TITLE = "Classification"
ABSTAINED = "No class fits this text well enough."
LIST_TITLE = "Classes of this server"
NO_CLASSES = error_text(zsl.NoClassesError())
NO_DESCRIPTION = "(no description)"


def abstained_detail(best: str, confidence: float, threshold: float) -> str:
    return (
        f"The closest is {best} at {confidence:.0%}, below the {threshold:.0%} this server "
        "asks for."
    )


def only_first(count: int) -> str:
    return f"Only the first {count:,} characters were classified."


def unknown_text_words(words: str) -> str:
    return f"Ignored words the model does not know: {words}"


def evidence(words: str) -> str:
    return f"Words that decided it: {words}"


def page_footer(page: int, pages: int, count: int) -> str:
    return f"Page {page} of {pages} - {_classes(count)}. Use /classes page: to see more."


def page_out_of_range(page: int, pages: int) -> str:
    return f"There is no page {page}; the list has {pages} pages."


# -- console --------------------------------------------------------------------------------------

CONSOLE_BANNER = "Zero-shot classifier console. Type /help for the commands, /quit to leave."
CONSOLE_START = "Start with: /addclass sports football match team goal"


def console_ready(count: int) -> str:
    """The banner's second line when classes exist already."""
    return f"{_classes(count)} ready: type a text to classify it, or /classes to list them."


CONSOLE_LOADING = "Loading the word-vector model..."
CONSOLE_HELP_INTRO = (
    "Commands (options may also be typed Discord-style: /addclass name: video games "
    'description: play;\nquote a name with spaces: "video games"):'
)
CONSOLE_HELP_NOTES = (
    "  /quit                              leave the console",
    "Anything not starting with / is classified.",
)
CONSOLE_BYE = "Bye."


def console_unknown_command(name: str) -> str:
    return f"There is no command /{name}. Type /help to see the commands."


def console_usage(usage: str) -> str:
    return f"Usage: {usage}"


_EXPECTED = {int: "a whole number", float: "a number", bool: "yes or no"}


def console_bad_value(option: str, kind: type, raw: str) -> str:
    return f"{option}: must be {_EXPECTED.get(kind, 'text')}, not {raw!r}."


def console_no_file(path: str) -> str:
    return f"There is no readable file at {path}. Give the path of a file from /exportclasses."


CONSOLE_UNBALANCED_QUOTE = (
    'A quote needs its closing quote, as in "video games". Put a name with an apostrophe in '
    'double quotes: "it\'s fun".'
)


# -- operators ------------------------------------------------------------------------------------

TOKEN_MISSING = (
    "DISCORD_TOKEN is not set. Create a bot at https://discord.com/developers/applications, "
    "copy its token from the Bot page and put it in .env as DISCORD_TOKEN=... "
    "(or try the offline console: python -m bot --console)."
)
TOKEN_REJECTED = (
    "Discord rejected DISCORD_TOKEN. Copy a fresh token from the Bot page at "
    "https://discord.com/developers/applications and put it in .env as DISCORD_TOKEN=..."
)
INTENTS_REFUSED = (
    "Discord refused an intent this bot asked for. Check the Privileged Gateway Intents on "
    "the Bot page at https://discord.com/developers/applications."
)


def discord_unreachable(reason: str) -> str:
    return (
        f"Cannot reach Discord ({reason}). Check the network connection, or DISCORD_API_BASE "
        "if you set it, then start the bot again."
    )
