"""The core's errors carry their data and a neutral sentence that names no front end."""

from __future__ import annotations

import re

import pytest

import zsl

# One of each error the core raises with data, as the service and the stores raise them.
WITH_DATA: list[zsl.ZslError] = [
    zsl.NoClassesError(),
    zsl.NoClassesError(("sports", "music")),
    zsl.ClassNotFoundError("sports"),
    zsl.DuplicateClassError("sports"),
    zsl.ConfusableClassError("\u0455ports", "sports"),
    zsl.ClassLimitError(100),
    zsl.ExampleLimitError("sports", 20),
    zsl.ExampleNotFoundError("sports", 5, 2),
    zsl.VoteNotFoundError(7),
    zsl.InvalidThresholdError(1.5, 0.6),
    zsl.InvalidTextError(length=0),
    zsl.InvalidTextError(length=2001, limit=2000),
    zsl.UnknownWordsError(["qxzv"]),
    zsl.UnknownWordsError([], what="class 'sports'"),
]


@pytest.mark.parametrize("error", WITH_DATA, ids=lambda e: type(e).__name__)
def test_default_sentences_name_no_command_and_no_discord_role(error: zsl.ZslError) -> None:
    text = str(error)

    assert re.search(r"(^|\s)/[a-z]", text) is None, text
    assert "server" not in text.lower()
    assert "admin" not in text.lower()
    assert text.endswith("."), text


def test_default_sentences() -> None:
    assert [str(e) for e in WITH_DATA[:10]] == [
        "There are no classes yet. Add one first.",
        "None of the classes can be used with the current model, which knows none of their "
        "words ('sports', 'music'). Describe them again in words it knows.",
        "There is no class named 'sports'. Check the name.",
        "A class named 'sports' already exists. Pick another name.",
        "The name '\u0455ports' looks the same as the existing class 'sports'. Pick a clearly "
        "different name.",
        "There are already 100 classes, the maximum. Remove one first.",
        "The class 'sports' already has 20 examples, the maximum. Remove one first.",
        "The class 'sports' has no example number 5; it has 2.",
        "There is no vote number 7. List the votes to see their numbers.",
        "The threshold must be between 0 and 1 (the default is 0.6).",
    ]
    assert str(zsl.InvalidTextError(length=0)) == (
        "There is no text to classify. Write a sentence or two."
    )
    assert str(zsl.InvalidTextError(length=2001, limit=2000)) == (
        "The text is 2001 characters long; the limit is 2000. Shorten it and try again."
    )


def test_errors_carry_their_data() -> None:
    confusable = zsl.ConfusableClassError("\u0455ports", "sports")
    examples = zsl.ExampleLimitError("sports", 20)
    missing = zsl.ExampleNotFoundError("sports", 5, 2)
    threshold = zsl.InvalidThresholdError(1.5, 0.6)
    too_long = zsl.InvalidTextError(length=2001, limit=2000)

    assert zsl.NoClassesError(("a", "b")).dormant == ("a", "b")
    assert zsl.ClassNotFoundError("x").name == "x"
    assert zsl.DuplicateClassError("x").name == "x"
    assert (confusable.name, confusable.existing) == ("\u0455ports", "sports")
    assert zsl.ClassLimitError(100).limit == 100
    assert (examples.name, examples.limit) == ("sports", 20)
    assert (missing.name, missing.number, missing.count) == ("sports", 5, 2)
    assert zsl.VoteNotFoundError(7).number == 7
    assert (threshold.value, threshold.default) == (1.5, 0.6)
    assert (too_long.length, too_long.limit) == (2001, 2000)
    assert zsl.UnknownWordsError(["a", "a", "b"], what="example").words == ("a", "b")
    assert zsl.UnknownWordsError(["a"], what="example").what == "example"


@pytest.mark.parametrize(
    "error",
    [
        zsl.ExampleNotFoundError("x", 1, 0),
        zsl.VoteNotFoundError(1),
        zsl.InvalidThresholdError(2, 0.6),
    ],
    ids=lambda e: type(e).__name__,
)
def test_new_types_are_still_caught_as_invalid_class_errors(error: zsl.ZslError) -> None:
    # These three cases raised InvalidClassError before they had types of their own.
    assert isinstance(error, zsl.InvalidClassError)


def test_user_input_in_a_sentence_is_one_clipped_printable_line() -> None:
    name = "line\nbreak\x07 " + "x" * 100

    shown = zsl.shown_input(name)
    sentence = str(zsl.ExampleNotFoundError(name, 3, 1))

    assert shown == "line break " + "x" * 48 + "\u2026"
    assert len(shown) == 60
    assert sentence == f"The class '{shown}' has no example number 3; it has 1."
    assert (
        str(zsl.ClassNotFoundError(name)) == f"There is no class named '{shown}'. Check the name."
    )
