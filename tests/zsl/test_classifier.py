from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from zsl import ClassSet, Encoder, NoClassesError, WordVectors
from zsl.classes import embed_class
from zsl.classifier import calibrated_scores, rank, rank_encoded
from zsl.records import ClassDefinition


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
    with pytest.raises(NoClassesError) as refused:
        rank(Encoder(tiny), ClassSet.EMPTY, "football")

    assert str(refused.value) == "There are no classes yet. Add one first."


def _long_descriptions(glove: WordVectors, count: int, length: int) -> list[ClassDefinition]:
    words = [w for w in list(glove.key_to_index)[1000:20000] if w.isalpha()]
    definitions = []
    for i in range(count):
        chosen = words[i * 40 : (i + 1) * 40]
        definitions.append(ClassDefinition(f"class {i}", " ".join(chosen)[:length]))
    return definitions


@pytest.mark.parametrize("hostile", ["\u249c" * 2000, "a " * 1000, "a'" * 990 + "a"])
def test_a_batch_of_hostile_texts_stays_within_its_memory_budget(
    glove: WordVectors, hostile: str
) -> None:
    # NFKC turns "⒜" into "(a)": 2,000 characters, 2,000 words. Matching 64 such texts against
    # ~3,600 class words at once once took 1.9 GB; repeated words now count once, a text adds
    # at most max_text_words words, and the products run in blocks of the memory budget.
    encoder = Encoder(glove)
    classes = ClassSet.EMPTY
    for definition in _long_descriptions(glove, 100, 290):
        classes = classes.added(embed_class(encoder, definition))
    distinct = " ".join(w for w in list(glove.key_to_index)[3000:6000] if w.isalpha())[:2000]
    texts = [hostile] * 32 + [distinct] * 32
    assert len(classes.words) > 3000

    tracemalloc.start()
    try:
        results = rank_encoded(encoder.encode_many(texts), classes)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert len(results) == 64
    assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MB"


def test_scores_in_blocks_equal_scores_at_once(glove: WordVectors) -> None:
    encoder = Encoder(glove)
    many = ClassSet.EMPTY
    for definition in _long_descriptions(glove, 60, 290):
        many = many.added(embed_class(encoder, definition))
    few = ClassSet.EMPTY
    for definition in _long_descriptions(glove, 3, 60):
        few = few.added(embed_class(encoder, definition))
    texts = encoder.encode_many(["What a goal in the last minute!", "a'" * 50, "new album"] * 3)
    sets = [many, few, few] * 3  # a guild ranked alone and two padded together

    at_once = calibrated_scores(texts, sets)  # type: ignore[arg-type]
    in_blocks = calibrated_scores(texts, sets, memory_budget=1)  # type: ignore[arg-type]

    np.testing.assert_allclose(in_blocks, at_once, rtol=1e-5, atol=1e-5)
    assert np.isneginf(at_once[1, len(few) :]).all()
