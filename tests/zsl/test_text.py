from __future__ import annotations

import pytest

from zsl import tokenize


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("What a goal!", ["What", "a", "goal"]),
        ("see https://example.com/x?y=1 and www.test.org now", ["see", "and", "now"]),
        ("hey <@123456789> and <@!42>, look at <#987>", ["hey", "and", "look", "at"]),
        ("<@&55> role ping and </classify:123> command", ["role", "ping", "and", "command"]),
        (
            "party time <:party_parrot:1234> <a:dance:99>",
            ["party", "time", "party", "parrot", "dance"],
        ),
        ("before ```python\nimport os\nprint(1)``` after", ["before", "after"]),
        ("run `rm -rf /` please", ["run", "please"]),
        (
            "**bold** __under__ ~~strike~~ ||spoiler|| > quote",
            ["bold", "under", "strike", "spoiler", "quote"],
        ),
        ("# Heading\n- item one", ["Heading", "item", "one"]),
        ("it's e-sports, don\u2019t", ["it's", "e-sports", "don't"]),
        ("foo\u200bbar zero\u200dwidth", ["foobar", "zerowidth"]),
        ("\uff46\uff55\uff4c\uff4c width", ["full", "width"]),
        ("snake_case words", ["snake", "case", "words"]),
        ("met at <t:1700000000:R> sharp", ["met", "at", "sharp"]),
        ("unclosed ``` fence goes to the end", ["unclosed"]),
        ("", []),
        ("🎉🎉 !!! ...", []),
    ],
)
def test_tokenize_keeps_words_and_drops_discord_markup(text: str, words: list[str]) -> None:
    assert tokenize(text) == words


def test_tokenize_keeps_non_latin_scripts() -> None:
    assert tokenize("привет мир 東京") == ["привет", "мир", "東京"]


def test_tokenize_survives_lone_surrogates_and_nul() -> None:
    assert tokenize("bad\ud800 text\x00here") == ["bad", "text", "here"]
