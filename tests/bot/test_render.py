"""Rendering: escaping, bars, the result embed, class pages within Discord's limits."""

from __future__ import annotations

import math

import pytest

import zsl
from bot import messages, render


def classification(
    *predictions: tuple[str, float, float],
    abstained: bool = False,
    unknown: tuple[str, ...] = (),
    evidence: tuple[str, ...] = ("goal",),
) -> zsl.Classification:
    return zsl.Classification(
        predictions=tuple(zsl.Prediction(n, s, c) for n, s, c in predictions),
        abstained=abstained,
        threshold=0.5,
        unknown_words=unknown,
        evidence=evidence,
    )


class TestEscape:
    def test_markdown_is_shown_literally(self) -> None:
        assert render.escape("**bold** _it_ `code` ||spoiler||") == (
            r"\*\*bold\*\* \_it\_ \`code\` \|\|spoiler\|\|"
        )

    def test_mass_and_user_mentions_are_broken(self) -> None:
        escaped = render.escape("@everyone @here <@123456789012345678>")

        assert "@everyone" not in escaped
        assert "@here" not in escaped
        assert "<@123456789012345678>" not in escaped
        assert "@\u200beveryone" in escaped

    def test_shown_clips_before_escaping(self) -> None:
        assert render.shown("ab*cdef", 4) == "ab\\*\u2026"


class TestBar:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (0.0, "░░░░░░░░░░"),
            (0.04, "░░░░░░░░░░"),
            (0.5, "█████░░░░░"),
            (0.66, "███████░░░"),
            (1.0, "██████████"),
            (1.7, "██████████"),
            (-0.3, "░░░░░░░░░░"),
            (math.nan, "░░░░░░░░░░"),
        ],
    )
    def test_bar_length_follows_the_value(self, value: float, expected: str) -> None:
        assert render.bar(value) == expected

    def test_bar_always_has_the_full_width(self) -> None:
        assert all(len(render.bar(i / 37, width=7)) == 7 for i in range(38))


class TestResultEmbed:
    def test_one_line_and_bar_per_class_best_first(self) -> None:
        result = classification(("sports", 0.61, 0.8), ("music", 0.2, 0.1))

        embed = render.result_embed(result, "what a goal")

        assert embed.title == messages.RESULT_TITLE
        lines = (embed.description or "").splitlines()
        assert lines[0] == "> what a goal"
        assert lines[2] == "**sports**  ████████░░  80% · score 0.61"
        assert lines[3] == "**music**  █░░░░░░░░░  10% · score 0.20"
        assert embed.footer.text == messages.evidence("goal")

    def test_abstaining_says_no_class_fits(self) -> None:
        result = classification(("sports", 0.1, 0.3), abstained=True)

        embed = render.result_embed(result)

        assert embed.title == messages.ABSTAINED
        assert messages.abstained_detail("sports", 0.3, 0.5) in (embed.description or "")
        assert embed.colour == render.ABSTAIN_COLOUR
        assert "decided" not in (embed.footer.text or "")

    def test_unknown_words_are_footnoted(self) -> None:
        result = classification(("sports", 0.5, 0.7), unknown=("qwzx", "plorb"))

        embed = render.result_embed(result)

        assert messages.unknown_text_words("qwzx, plorb") in (embed.footer.text or "")

    def test_user_text_and_class_names_are_escaped(self) -> None:
        result = classification(("@everyone *news*", 0.5, 0.7), evidence=())

        embed = render.result_embed(result, "@here look at **this**")
        description = embed.description or ""

        assert "**@\u200beveryone \\*news\\***" in description
        assert "> @\u200bhere look at \\*\\*this\\*\\*" in description

    def test_huge_inputs_stay_inside_discord_limits(self) -> None:
        predictions = [(f"{i}" + "x" * 500, 0.1, 0.1) for i in range(10)]
        result = classification(*predictions, unknown=tuple("w" * 50 for _ in range(100)))

        embed = render.result_embed(result, "y" * 4000)

        assert len(embed.description or "") <= 4096
        assert len(embed.footer.text or "") <= 2048
        assert len(embed) <= 6000


class TestClassPages:
    def test_short_list_is_one_page(self) -> None:
        definitions = [zsl.ClassDefinition("sports", "football"), zsl.ClassDefinition("music")]

        pages = render.class_pages(definitions)

        assert len(pages) == 1
        assert pages[0].lines == ("**sports**: football", f"**music**: {messages.NO_DESCRIPTION}")

    def test_long_lists_are_paginated_within_limits(self) -> None:
        definitions = [zsl.ClassDefinition(f"c{i}" + "n" * 90, "d" * 1000) for i in range(45)]

        pages = render.class_pages(definitions)
        embeds = [render.classes_embed(page, len(definitions)) for page in pages]

        assert sum(len(page.lines) for page in pages) == 45
        assert [page.number for page in pages] == list(range(1, len(pages) + 1))
        assert all(page.count == len(pages) for page in pages)
        for embed in embeds:
            assert len(embed.description or "") <= 4096
            assert len(embed) <= 6000
        assert embeds[0].footer.text == messages.page_footer(1, len(pages), 45)

    def test_at_most_ten_classes_per_page(self) -> None:
        definitions = [zsl.ClassDefinition(f"c{i}") for i in range(25)]

        assert [len(p.lines) for p in render.class_pages(definitions)] == [10, 10, 5]


def test_result_text_is_plain_and_aligned() -> None:
    result = classification(("sports", 0.61, 0.8), ("video games", 0.2, 0.1))

    text = render.result_text(result)

    assert text.splitlines()[:2] == [
        "  sports       ████████░░   80%  (score 0.61)",
        "  video games  █░░░░░░░░░   10%  (score 0.20)",
    ]
    assert "**" not in text


class TestExamplesEmbed:
    def test_class_name_in_the_title_is_escaped(self) -> None:
        definition = zsl.ClassDefinition("@everyone *news*", "report", ("a report",))

        embed = render.examples_embed(definition)

        assert embed.title == "Examples of @\u200beveryone \\*news\\*"

    def test_longest_escaped_name_fits_a_title(self) -> None:
        definition = zsl.ClassDefinition("*" * 300)

        embed = render.examples_embed(definition)

        assert len(embed.title or "") <= 256
        assert (embed.title or "").startswith("Examples of \\*\\*")


class TestHelp:
    def test_members_see_member_commands_admins_see_all(self) -> None:
        member = render.help_embed(admin=False).description or ""
        admin = render.help_embed(admin=True).description or ""

        assert "/classify" in member
        assert "/addclass" not in member
        assert "/votes" not in member
        assert admin.startswith(member)
        for command in ("/addclass", "/editclass", "/removeclass", "/threshold", "/votes"):
            assert command in admin


class TestThresholdMessages:
    @pytest.mark.parametrize("value", [0.0, -0.0])
    def test_zero_shows_as_zero_percent(self, value: float) -> None:
        assert "at least 0% sure" in messages.threshold_set(value)
        assert "at least 0% sure" in messages.threshold_shown(value, 0.6)


class TestErrorText:
    """The bot and the console word the core's errors as they always did, from their data."""

    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (
                zsl.NoClassesError(),
                "This server has no classes yet. An admin can add one with /addclass.",
            ),
            (
                zsl.NoClassesError(("sports", "a\nb")),
                "None of this server's classes can be used with the current model, which knows "
                "none of their words ('sports', 'a b'). An admin can describe them again with "
                "/editclass.",
            ),
            (
                zsl.ClassNotFoundError("sports"),
                "There is no class named 'sports'. /classes lists the existing ones.",
            ),
            (
                zsl.DuplicateClassError("sports"),
                "A class named 'sports' already exists. Pick another name, or change it with "
                "/editclass.",
            ),
            (
                zsl.ConfusableClassError("\u0455ports", "sports"),
                "The name '\u0455ports' looks the same as the existing class 'sports'. Pick a "
                "clearly different name.",
            ),
            (
                zsl.ClassLimitError(100),
                "This server already has 100 classes, the maximum. Remove one with /removeclass "
                "first.",
            ),
            (
                zsl.ExampleLimitError("sports", 20),
                "The class 'sports' already has 20 examples, the maximum. Remove one with "
                "/removeexample first.",
            ),
            (
                zsl.ExampleNotFoundError("sports", 5, 2),
                "The class 'sports' has no example number 5; it has 2. /examples lists them.",
            ),
            (zsl.VoteNotFoundError(7), "There is no vote number 7. /votes lists them."),
            (
                zsl.InvalidThresholdError(1.5, 0.6),
                "The threshold must be between 0 and 1 (the default is 0.6).",
            ),
            (
                zsl.InvalidTextError(length=0),
                "There is no text to classify. Give me a sentence or two.",
            ),
            (
                zsl.InvalidTextError(length=2001, limit=2000),
                "The text is 2001 characters long; the limit is 2000. Shorten it and try again.",
            ),
            (
                zsl.StoreUnavailableError("The class registry cannot be written right now."),
                "The class registry cannot be written right now.",
            ),
        ],
        ids=lambda v: type(v).__name__ if isinstance(v, zsl.ZslError) else "",
    )
    def test_each_error_reads_as_before(self, error: zsl.ZslError, expected: str) -> None:
        assert messages.error_text(error) == expected

    def test_user_input_is_clipped_as_the_core_clips_it(self) -> None:
        name = "x" * 100

        text = messages.error_text(zsl.ClassNotFoundError(name))

        assert (
            text == f"There is no class named '{'x' * 59}\u2026'. /classes lists the existing ones."
        )

    def test_the_empty_class_list_is_the_no_classes_sentence(self) -> None:
        assert messages.error_text(zsl.NoClassesError()) == messages.NO_CLASSES
        assert render.classes_text([]) == messages.NO_CLASSES
