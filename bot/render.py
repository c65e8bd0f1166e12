"""Turn classifications and class lists into Discord embeds and into plain text.

Everything a user typed is escaped before it is shown (markdown and mentions), and clipped so
an embed stays inside Discord's size limits whatever the configured class limits are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import discord

import zsl
from bot import commands, messages

log = logging.getLogger(__name__)

BAR_WIDTH = 10
FULL = "\u2588"  # full block
EMPTY = "\u2591"  # light shade
FIT_COLOUR = discord.Colour.green()
ABSTAIN_COLOUR = discord.Colour.light_grey()
LIST_COLOUR = discord.Colour.blurple()

# Discord's limits are 4096 (embed description) and 2048 (footer); stay well inside them.
_DESCRIPTION_BUDGET = 3800
_FOOTER_BUDGET = 1000
_SNIPPET = 300
_SHOWN_NAME = 100
_SHOWN_DESCRIPTION = 300
_PAGE_SIZE = 10


def escape(text: str) -> str:
    """User text made inert for Discord: no markdown, no mentions."""
    return discord.utils.escape_markdown(discord.utils.escape_mentions(text))


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "\u2026"


def shown(text: str, limit: int) -> str:
    """Clip first, then escape, so an escape sequence is never cut in half."""
    return escape(clip(text, limit))


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A text bar such as ``██████░░░░`` for a value in [0, 1] (clamped)."""
    fraction = min(max(fraction, 0.0), 1.0) if fraction == fraction else 0.0
    full = round(fraction * width)
    return FULL * full + EMPTY * (width - full)


def _percent(value: float) -> str:
    return f"{value:.0%}"


# -- classification ------------------------------------------------------------------------------


def result_embed(
    result: zsl.Classification, text: str | None = None, *, note: str | None = None
) -> discord.Embed:
    """The answer to /classify or "Classify message": one line and bar per ranked class.

    ``note`` (ours, not user text) leads the footer, e.g. that only part of a text was read.
    """
    lines: list[str] = []
    if text:
        quoted = shown(" ".join(text.split()), _SNIPPET)
        lines += [f"> {quoted}", ""]
    if result.abstained:
        top = result.top
        lines += [
            messages.abstained_detail(
                shown(top.name, _SHOWN_NAME), top.confidence, result.threshold
            ),
            "",
        ]
    for prediction in result.predictions:
        lines.append(
            f"**{shown(prediction.name, _SHOWN_NAME)}**  {bar(prediction.confidence)}  "
            f"{_percent(prediction.confidence)} \u00b7 score {prediction.score:.2f}"
        )
    embed = discord.Embed(
        title=messages.ABSTAINED if result.abstained else messages.RESULT_TITLE,
        description=clip("\n".join(lines), _DESCRIPTION_BUDGET),
        colour=ABSTAIN_COLOUR if result.abstained else FIT_COLOUR,
    )
    footer = "\n".join(part for part in (note, _footer(result)) if part)
    if footer:
        # Footers do not render markdown, so only mentions need neutralising there.
        embed.set_footer(text=footer)
    return embed


def _footer(result: zsl.Classification) -> str:
    parts: list[str] = []
    if result.evidence and not result.abstained:
        parts.append(messages.evidence(", ".join(result.evidence)))
    if result.unknown_words:
        parts.append(messages.unknown_text_words(", ".join(result.unknown_words)))
    return discord.utils.escape_mentions(clip("\n".join(parts), _FOOTER_BUDGET))


def result_text(result: zsl.Classification) -> str:
    """The same answer as plain text for the console."""
    lines: list[str] = []
    if result.abstained:
        top = result.top
        lines += [
            messages.ABSTAINED,
            messages.abstained_detail(top.name, top.confidence, result.threshold),
        ]
    width = max(len(p.name) for p in result.predictions)
    for prediction in result.predictions:
        lines.append(
            f"  {prediction.name.ljust(width)}  {bar(prediction.confidence)}  "
            f"{_percent(prediction.confidence).rjust(4)}  (score {prediction.score:.2f})"
        )
    if result.evidence and not result.abstained:
        lines.append(messages.evidence(", ".join(result.evidence)))
    if result.unknown_words:
        lines.append(messages.unknown_text_words(", ".join(result.unknown_words)))
    return "\n".join(lines)


# -- class lists ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassPage:
    """One page of the class list: its number (from 1), the page count, and its lines."""

    number: int
    count: int
    lines: tuple[str, ...]


def class_pages(definitions: Sequence[zsl.ClassDefinition]) -> list[ClassPage]:
    """Split a guild's classes into pages that each fit one embed."""
    pages: list[list[str]] = []
    current: list[str] = []
    size = 0
    for definition in definitions:
        line = (
            f"**{shown(definition.name, _SHOWN_NAME)}**: "
            f"{shown(definition.description, _SHOWN_DESCRIPTION) or messages.NO_DESCRIPTION}"
        )
        if current and (len(current) >= _PAGE_SIZE or size + len(line) + 1 > _DESCRIPTION_BUDGET):
            pages.append(current)
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        pages.append(current)
    return [ClassPage(i + 1, len(pages), tuple(lines)) for i, lines in enumerate(pages)]


def classes_embed(page: ClassPage, total: int) -> discord.Embed:
    """One page of /classes."""
    embed = discord.Embed(
        title=messages.LIST_TITLE, description="\n".join(page.lines), colour=LIST_COLOUR
    )
    if page.count > 1:
        embed.set_footer(text=messages.page_footer(page.number, page.count, total))
    return embed


def examples_embed(definition: zsl.ClassDefinition) -> discord.Embed:
    """A class's examples, numbered from 1 (the oldest), for /examples."""
    lines = [
        f"`{i}.` {shown(' '.join(text.split()), _SNIPPET)}"
        for i, text in enumerate(definition.examples, start=1)
    ]
    return discord.Embed(
        # Titles render markdown too; an escaped name of _SHOWN_NAME characters stays under 256.
        title=messages.EXAMPLES_TITLE.format(name=shown(definition.name, _SHOWN_NAME)),
        description=clip("\n".join(lines) or messages.NO_EXAMPLES, _DESCRIPTION_BUDGET),
        colour=LIST_COLOUR,
    )


def help_embed(admin: bool) -> discord.Embed:
    """/help: the member commands, plus the admin ones for members with Manage Server."""
    return discord.Embed(
        title=messages.HELP_TITLE, description=commands.help_text(admin), colour=LIST_COLOUR
    )


def votes_embed(votes: Sequence[zsl.Vote]) -> discord.Embed:
    """Members' feedback for /votes; mentions render as names but ping nobody."""
    lines = [
        messages.vote_line(
            vote.id,
            vote.user_id,
            shown(vote.predicted, _SHOWN_NAME),
            None if vote.suggested is None else shown(vote.suggested, _SHOWN_NAME),
            shown(" ".join(vote.text.split()), 150),
        )
        for vote in votes
    ]
    return discord.Embed(
        title=messages.VOTES_TITLE,
        description=clip("\n".join(lines) or messages.NO_VOTES, _DESCRIPTION_BUDGET),
        colour=LIST_COLOUR,
    )


def classes_text(definitions: Sequence[zsl.ClassDefinition]) -> str:
    """The class list as plain text for the console."""
    if not definitions:
        return messages.NO_CLASSES
    width = max(len(d.name) for d in definitions)
    return "\n".join(
        f"  {d.name.ljust(width)}  {d.description or messages.NO_DESCRIPTION}" for d in definitions
    )
