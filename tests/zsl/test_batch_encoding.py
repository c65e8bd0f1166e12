"""A batch of texts is encoded with array operations over all its words at once, and a class's
kept calibration is found by a short key: what a guild rebuilt from kept calibrations costs.
Each shortcut must give exactly what the plain way gives."""

from __future__ import annotations

import numpy as np
import pytest

from zsl import Encoder, UnknownWordsError, WordVectors, tokenize
from zsl.classes import Calibration, CalibrationCache, ClassCalibration
from zsl.embedding import _reduceat_rows, segment_sums
from zsl.records import ClassDefinition
from zsl.text import _WORD

UNUSUAL = [
    "the the the goal THE Goal",  # repeats, in several casings of one model row
    "don't it's e-sports rock'n'roll",  # clitics and hyphens: the general path
    "blorptastic goal blorptastic",  # an unseen word (built from pieces by the default model)
    "blorptastic",  # the same unseen word in another text of the batch
    "zorblaxqq quuxifyzz",  # nothing known (glove): its error, in its place
    "x" * 70 + " goal",  # a token too long to look up
    " ".join(str(i) for i in range(400)),  # more distinct words than a text may keep
    "```code goal``` see https://example.com/goal <@123> <:party_parrot:12> match",
    "it\u2019s caf\u00e9 time",  # non-ASCII, a typographic apostrophe
    "",
]


def _same(alone: object, batched: object) -> None:
    if isinstance(alone, UnknownWordsError):
        assert isinstance(batched, UnknownWordsError)
        assert (alone.words, str(alone)) == (batched.words, str(batched))
        return
    assert not isinstance(batched, UnknownWordsError)
    for name in ("vector", "word_vectors", "weights", "raw"):
        mine, theirs = getattr(alone, name), getattr(batched, name)
        assert (mine.dtype, mine.shape, mine.tobytes()) == (
            theirs.dtype,
            theirs.shape,
            theirs.tobytes(),
        )
    for name in ("words", "unknown_words"):
        assert getattr(alone, name) == getattr(batched, name)


@pytest.mark.parametrize("model", ["glove", "default_model"])
def test_unusual_texts_encode_the_same_bit_for_bit_alone_or_in_a_batch(
    request: pytest.FixtureRequest, model: str
) -> None:
    vectors: WordVectors = request.getfixturevalue(model)
    texts = UNUSUAL + UNUSUAL[::-1]
    together = Encoder(vectors).encode_many(texts)
    # A fresh encoder each time: nothing remembered from the batch helps a text alone.
    alone = [Encoder(vectors).encode_many([text])[0] for text in texts]

    for one, batched in zip(alone, together, strict=True):
        _same(one, batched)


def test_a_word_repeated_in_a_text_weighs_its_count_and_only_there(glove: WordVectors) -> None:
    encoder = Encoder(glove)

    twice, once, cased = encoder.encode_many(["goal match goal", "goal", "Goal GOAL goal"])

    assert not isinstance(twice, UnknownWordsError)
    assert not isinstance(once, UnknownWordsError)
    assert not isinstance(cased, UnknownWordsError)
    assert twice.words == ("goal", "match")
    assert once.words == ("goal",)
    assert twice.weights[0] == 2 * once.weights[0]
    assert cased.words == ("Goal",)  # the first spelling met, the three counted
    assert cased.weights[0] == 3 * once.weights[0]


def test_an_unseen_word_takes_the_rarest_weight_and_its_built_vector(
    default_model: WordVectors,
) -> None:
    encoder = Encoder(default_model)
    assert default_model.index("blorptastic") is None
    assert default_model.subword_vector is not None

    first, second = encoder.encode_many(["blorptastic goal blorptastic", "blorptastic"])

    assert not isinstance(first, UnknownWordsError)
    assert not isinstance(second, UnknownWordsError)
    assert first.words == ("blorptastic", "goal")
    assert second.words == ("blorptastic",)
    built = default_model.subword_vector("blorptastic")
    assert first.raw[0].tobytes() == built.tobytes() == second.raw[0].tobytes()
    assert first.weights[0] == 2 * second.weights[0] == 2 * encoder._weights[-1]


def test_a_text_keeps_its_first_max_text_words_distinct_words_with_all_their_counts(
    glove: WordVectors,
) -> None:
    encoder = Encoder(glove)
    limit = encoder.config.max_text_words
    numbers = [str(i) for i in range(limit + 20)]

    # A text after the long one in the batch: its words start where the long one's kept end.
    encoded, after = encoder.encode_many([" ".join(numbers + numbers[:3]), " ".join(numbers[:3])])

    assert not isinstance(encoded, UnknownWordsError)
    assert not isinstance(after, UnknownWordsError)
    assert encoded.words == tuple(numbers[:limit])
    assert after.words == tuple(numbers[:3])
    np.testing.assert_array_equal(encoded.weights[:3], 2 * after.weights)
    np.testing.assert_array_equal(encoded.raw[:3], after.raw)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("visit WWW.Example.com today", ["visit", "today"]),
        ("visit HTTPS://Example.com/x today", ["visit", "today"]),
        ("a<b and a `tick` here", ["a", "b", "and", "a", "here"]),
        ("it\u2019s <@123> here\u2019s", ["it's", "here's"]),
        ("plain words only, don't stop", ["plain", "words", "only", "don't", "stop"]),
    ],
)
def test_markup_is_looked_for_before_it_is_removed(text: str, words: list[str]) -> None:
    assert tokenize(text) == words


def test_plain_ascii_text_splits_into_the_words_the_pattern_finds() -> None:
    # Texts of letters, digits and spaces take a shortcut past the pattern; the characters
    # around them must send every other text the long way.
    rng = np.random.default_rng(3)
    alphabet = [*"abcXYZ019 ", "\n", "\t", "\x0b", "\x1c", "_", "'", "-", ".", "!", "\u00e9"]
    texts = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 12)))) for _ in range(3000)]

    for text in texts:
        if text.isascii():  # no markup in the alphabet: nothing for the other patterns to remove
            assert tokenize(text) == _WORD.findall(text), repr(text)


def test_sums_of_segments_are_numpys_own_bit_for_bit() -> None:
    rng = np.random.default_rng(4)
    cases = [
        rng.integers(1, 4, size=3),  # a few: numpy's own calls
        rng.integers(1, 9, size=30),  # short ones only: position by position
        np.concatenate([rng.integers(1, 9, size=20), rng.integers(9, 40, size=10)]),  # mixed
        rng.permutation(np.concatenate([rng.integers(1, 8, size=12), [8, 9, 130, 300]])),
    ]
    for lengths in cases:
        starts = np.cumsum(lengths) - lengths
        rows = rng.standard_normal((int(lengths.sum()), 5)).astype(np.float32)
        rows *= rng.choice([1e-3, 1.0, 1e3], (len(rows), 1)).astype(np.float32)
        rows[rng.random(rows.shape) < 0.2] = 0.0
        rows[rng.random(rows.shape) < 0.2] = -0.0  # the sign of a zero sum must come out too
        values = np.ascontiguousarray(rows[:, 0])

        summed = _reduceat_rows(rows, starts, lengths)
        sums = segment_sums(values, starts, lengths)

        assert summed.tobytes() == np.add.reduceat(rows, starts, axis=0).tobytes()
        expected = [
            values[start : start + n].sum() for start, n in zip(starts, lengths, strict=True)
        ]
        assert sums.tobytes() == np.array(expected, dtype=np.float32).tobytes()


class TestCalibrationKeys:
    NUMBERS = ClassCalibration(Calibration(0.1, 0.2), Calibration(0.3, 0.4), 0.5, 0.7)

    def test_definitions_that_differ_only_where_their_parts_meet_never_share_a_key(
        self, tiny: WordVectors
    ) -> None:
        cache = CalibrationCache(Encoder(tiny), 1 << 20)
        kept = ClassDefinition("a b", "c", ("d",))
        cache.put(kept, self.NUMBERS)
        others = [
            ClassDefinition("a", "b c", ("d",)),
            ClassDefinition("a b", "c d"),
            ClassDefinition("a b", "c", ("d", "")),
            ClassDefinition("a b", "c", ("d e",)),
            ClassDefinition("a b', 'c", "", ("d",)),
            ClassDefinition("a b\ud800", "c", ("d",)),
        ]

        assert cache.get_many([*others, kept]) == [None] * len(others) + [self.NUMBERS]
        # The emoji does not change a calibration: the same entry.
        assert cache.get(ClassDefinition("a b", "c", ("d",), emoji="\u26bd")) == self.NUMBERS

    def test_finding_many_at_once_refreshes_each_found_entry(self, tiny: WordVectors) -> None:
        definitions = [ClassDefinition(f"class {i}", "football") for i in range(4)]
        cache = CalibrationCache(Encoder(tiny), 1 << 20)
        for definition in definitions:
            cache.put(definition, self.NUMBERS)

        found = cache.get_many([definitions[0], ClassDefinition("new"), definitions[1]])
        cache.budget = cache.nbytes  # the next put evicts exactly one: the least recent
        cache.put(ClassDefinition("new"), self.NUMBERS)

        assert found == [self.NUMBERS, None, self.NUMBERS]
        assert cache.get_many(definitions) == [self.NUMBERS, self.NUMBERS, None, self.NUMBERS]
