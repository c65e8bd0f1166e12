from __future__ import annotations

import random
import tracemalloc
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from zsl import Classification, ClassSet, Encoder, NoClassesError, ScoringConfig, WordVectors
from zsl.bench import CHAT, bench_classes
from zsl.classes import ClassVector, embed_class, embed_classes
from zsl.classifier import calibrated_scores, rank, rank_encoded
from zsl.embedding import Encoded
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


# A set past the threshold is ranked through a shortlist; these tests force it on a few hundred
# classes (a tighter shortlist than the default's 256 of 10,000) and compare with every class's
# exact score. 60 of 300: with 40, one text of the 200 below gets another third class from the
# refined default table (its leading dimensions hold less of a word than before refining).
SHORTLISTED = ScoringConfig(shortlist_above=0, shortlist_size=60)
EXACT = ScoringConfig(shortlist_above=10**9)


@pytest.fixture(scope="module")
def large(default_model: WordVectors) -> tuple[Encoder, ClassSet, list[Encoded]]:
    encoder = Encoder(default_model)
    definitions = bench_classes(default_model, 300)
    # Every tenth class is a single word (its name repeated), beside classes of four words.
    definitions = [(n, n if i % 10 == 0 else d) for i, (n, d) in enumerate(definitions)]
    classes = ClassSet(tuple(embed_class(encoder, ClassDefinition(n, d)) for n, d in definitions))
    class_words = [w for n, d in definitions for w in f"{n} {d}".split()]
    ordinary = [w for w in list(default_model.key_to_index)[500:5000] if w.isalpha()]
    rng = random.Random(0)
    texts = list(CHAT)
    for _ in range(190):  # some words of a few classes among ordinary words: close calls
        texts.append(
            " ".join(rng.sample(class_words, 3) + rng.sample(ordinary, rng.randint(0, 15)))
        )
    return encoder, classes, [encoder.encode(t) for t in texts]


def _exact_top(
    texts: Sequence[Encoded], classes: ClassSet, k: int
) -> tuple[list[list[str]], npt.NDArray[np.float32]]:
    """Each text's k best class names by every class's exact score (ties: the earlier class)."""
    scores = calibrated_scores(texts, [classes] * len(texts))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[classes.names[c] for c in row] for row in order], scores


def _names(results: Sequence[Classification]) -> list[list[str]]:
    return [[p.name for p in r.predictions] for r in results]


def test_a_shortlisted_set_ranks_the_same_top_classes_as_exact_scores(
    large: tuple[Encoder, ClassSet, list[Encoded]],
) -> None:
    _, classes, texts = large

    results = rank_encoded(texts, classes, 3, None, SHORTLISTED)

    expected, _ = _exact_top(texts, classes, 3)
    words_per_class = np.diff(np.append(classes.word_starts, len(classes.words)))
    assert len(classes) >= 5 * SHORTLISTED.shortlist_size
    assert words_per_class.min() == 1
    assert words_per_class.max() >= 4
    assert _names(results) == expected


def test_shortlisted_predictions_carry_exact_scores(
    large: tuple[Encoder, ClassSet, list[Encoded]],
) -> None:
    _, classes, texts = large

    results = rank_encoded(texts, classes, 5, None, SHORTLISTED)

    _, scores = _exact_top(texts, classes, 5)
    got = np.array([[p.score for p in r.predictions] for r in results])
    want = np.array(
        [
            [scores[i, classes.names.index(p.name)] for p in r.predictions]
            for i, r in enumerate(results)
        ]
    )
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert [r.evidence for r in results] == [
        r.evidence for r in rank_encoded(texts, classes, 5, None, EXACT)
    ]


def test_sets_up_to_the_threshold_are_ranked_exactly(
    large: tuple[Encoder, ClassSet, list[Encoded]],
) -> None:
    _, classes, texts = large
    # A shortlist that cannot work: one dimension, no spare candidates.
    at_threshold = ScoringConfig(
        shortlist_above=len(classes.words), shortlist_dims=1, shortlist_size=1
    )
    above = ScoringConfig(
        shortlist_above=len(classes.words) - 1, shortlist_dims=1, shortlist_size=1
    )

    exact = rank_encoded(texts, classes, 3, None, at_threshold)
    shortlisted = rank_encoded(texts, classes, 3, None, above)

    assert _names(exact) == _exact_top(texts, classes, 3)[0]
    assert _names(shortlisted) != _names(exact)


def test_a_model_with_few_dimensions_is_ranked_exactly(glove: WordVectors) -> None:
    encoder = Encoder(glove)
    classes = ClassSet.EMPTY
    for definition in _long_descriptions(glove, 40, 60):
        classes = classes.added(embed_class(encoder, definition))
    texts = encoder.encode_many(
        [*CHAT, *(d.description for d in _long_descriptions(glove, 40, 30))]
    )
    # 50 dimensions, fewer than twice the 30 an estimate would use: even a shortlist that
    # cannot work (no spare candidates) is never used.
    config = ScoringConfig(shortlist_above=0, shortlist_dims=30, shortlist_size=1)

    results = rank_encoded(texts, classes, 3, None, config)  # type: ignore[arg-type]

    assert _names(results) == _exact_top(texts, classes, 3)[0]  # type: ignore[arg-type]


def test_a_text_of_many_distinct_words_is_shortlisted_correctly(
    default_model: WordVectors, large: tuple[Encoder, ClassSet, list[Encoded]]
) -> None:
    encoder, classes, _ = large
    words = [w for w in list(default_model.key_to_index)[2000:4000] if w.isalpha()]
    text = encoder.encode(" ".join(words[:400]))
    assert len(text.words) == encoder.config.max_text_words

    results = rank_encoded([text], classes, 3, None, SHORTLISTED)

    assert _names(results) == _exact_top([text], classes, 3)[0]


def test_a_text_of_function_words_only_is_shortlisted_with_all_of_them(
    large: tuple[Encoder, ClassSet, list[Encoded]],
) -> None:
    encoder, classes, _ = large
    text = encoder.encode("and it was the one that is not for you, of all")
    assert text.weights.max() < SHORTLISTED.shortlist_min_weight  # no telling word

    results = rank_encoded([text], classes, 3, None, SHORTLISTED)

    assert _names(results) == _exact_top([text], classes, 3)[0]


def test_tied_classes_rank_the_earlier_first_when_shortlisted(
    large: tuple[Encoder, ClassSet, list[Encoded]],
) -> None:
    _, classes, texts = large
    # Each class's twin (same vectors and calibration, another name) at the end of the set.
    twins = tuple(
        replace(c, definition=replace(c.definition, name=f"twin of {c.definition.name}"))
        for c in classes.classes
    )
    doubled = ClassSet(classes.classes + twins)

    # Twice the shortlist: each class takes two places in it.
    results = rank_encoded(texts, doubled, 4, None, replace(SHORTLISTED, shortlist_size=120))

    expected, _ = _exact_top(texts, doubled, 4)
    assert _names(results) == expected
    assert all(not n.startswith("twin") and m == f"twin of {n}" for n, m, *_ in expected)


@pytest.fixture(scope="module")
def past_threshold(default_model: WordVectors) -> tuple[ClassSet, list[Encoded]]:
    encoder = Encoder(default_model)
    definitions = [ClassDefinition(n, d) for n, d in bench_classes(default_model, 1_100)]
    embedded = embed_classes(encoder, definitions)
    classes = ClassSet(tuple(c for c in embedded if isinstance(c, ClassVector)))
    class_words = [w for d in definitions for w in f"{d.name} {d.description}".split()]
    ordinary = [w for w in list(default_model.key_to_index)[500:5000] if w.isalpha()]
    rng = random.Random(1)
    texts = list(CHAT)
    for _ in range(150):  # close calls, as in `large`
        texts.append(
            " ".join(rng.sample(class_words, 3) + rng.sample(ordinary, rng.randint(0, 15)))
        )
    return classes, [encoder.encode(t) for t in texts]


def test_a_set_past_the_default_threshold_is_shortlisted_with_its_kept_heads(
    past_threshold: tuple[ClassSet, list[Encoded]],
) -> None:
    classes, texts = past_threshold
    # The default threshold and dimensions; a shortlist of a tenth of the classes (60 was the
    # least that held on these texts, before and after the heads were kept).
    tight = ScoringConfig(shortlist_size=110)

    results = rank_encoded(texts, classes, 3, None, tight)

    assert len(classes.words) > tight.shortlist_above
    assert classes.heads is not None
    assert classes.heads_on(tight.shortlist_dims) is classes.heads
    assert _names(results) == _exact_top(texts, classes, 3)[0]
