from __future__ import annotations

import pytest

from zsl import ClassSet, Encoder, NoClassesError, WordVectors
from zsl.classes import embed_class
from zsl.classifier import rank
from zsl.store import ClassDefinition


@pytest.fixture
def setup(tiny: WordVectors) -> tuple[Encoder, ClassSet]:
    encoder = Encoder(tiny)
    classes = ClassSet.EMPTY
    for name, description in [
        ("sports", "football goal team"),
        ("music", "song album band"),
        ("politics", "election vote minister"),
    ]:
        classes = classes.added(embed_class(encoder, ClassDefinition(name, description)))
    return encoder, classes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the team scored a goal", "sports"),
        ("a new album and a concert", "music"),
        ("the minister lost the vote", "politics"),
    ],
)
def test_the_nearest_class_wins(setup: tuple[Encoder, ClassSet], text: str, expected: str) -> None:
    encoder, classes = setup

    result = rank(encoder, classes, text, top_k=3)

    assert result.top.name == expected
    assert [p.name for p in result.predictions].count(expected) == 1
    assert len(result.predictions) == 3


def test_confidence_follows_the_score(setup: tuple[Encoder, ClassSet]) -> None:
    encoder, classes = setup

    result = rank(encoder, classes, "the team scored a goal", top_k=3)

    scores = [p.score for p in result.predictions]
    confidences = [p.confidence for p in result.predictions]
    assert scores == sorted(scores, reverse=True)
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences)
    assert confidences[0] > result.threshold > confidences[-1]


def test_abstains_when_no_class_fits(setup: tuple[Encoder, ClassSet]) -> None:
    encoder, classes = setup

    result = rank(encoder, classes, "the and a is", top_k=1)

    assert result.abstained
    assert result.top.confidence < result.threshold


def test_threshold_decides_abstaining(setup: tuple[Encoder, ClassSet]) -> None:
    encoder, classes = setup

    strict = rank(encoder, classes, "the team scored a goal", threshold=1.0)
    lenient = rank(encoder, classes, "the and a is", threshold=0.0)

    assert strict.abstained
    assert not lenient.abstained


def test_evidence_names_the_words_that_pulled(setup: tuple[Encoder, ClassSet]) -> None:
    encoder, classes = setup

    result = rank(encoder, classes, "the football is a game", top_k=1)

    assert result.evidence[0] == "football"
    assert "the" not in result.evidence[:2]


def test_unknown_words_are_reported(setup: tuple[Encoder, ClassSet]) -> None:
    encoder, classes = setup

    assert rank(encoder, classes, "football zorblax").unknown_words == ("zorblax",)


def test_no_classes(tiny: WordVectors) -> None:
    with pytest.raises(NoClassesError, match="/addclass"):
        rank(Encoder(tiny), ClassSet.EMPTY, "football")
