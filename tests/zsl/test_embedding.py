from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zsl import Encoder, EncoderConfig, UnknownWordsError, WordVectors
from zsl.embedding import _ROW_BLOCK, MATCH_COLUMNS, MATCH_GROUP, _weighted_sums, similarities


def test_frequent_words_weigh_less_than_rare_ones(tiny: WordVectors) -> None:
    encoded = Encoder(tiny).encode("the football")

    weight = dict(zip(encoded.words, encoded.weights.tolist(), strict=True))

    assert weight["the"] < weight["football"] / 3


def test_vectors_are_unit_length(tiny: WordVectors) -> None:
    encoded = Encoder(tiny).encode("the band played a song")

    assert np.linalg.norm(encoded.vector) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(np.linalg.norm(encoded.word_vectors, axis=1), 1.0, atol=1e-5)


def test_common_component_is_removed(tiny: WordVectors) -> None:
    encoder = Encoder(tiny)

    # Every function word points mostly along the shared "ordinary text" axis; after the
    # common component is removed, two unrelated topic words are no longer alike through it.
    football, album = encoder.encode("football").vector, encoder.encode("album").vector
    raw = tiny.vectors[tiny.key_to_index["football"]] @ tiny.vectors[tiny.key_to_index["album"]]

    assert float(football @ album) < 0.0 < float(raw)


def test_unknown_words_are_reported_and_ignored(tiny: WordVectors) -> None:
    encoded = Encoder(tiny).encode("football zorblax Quuxify")

    assert encoded.words == ("football",)
    assert encoded.unknown_words == ("zorblax", "Quuxify")


def test_text_without_known_words_is_refused_with_the_words(tiny: WordVectors) -> None:
    with pytest.raises(UnknownWordsError, match="zorblax, quux") as info:
        Encoder(tiny).encode("zorblax quux")

    assert info.value.words == ("zorblax", "quux")


def test_text_that_is_only_markup_is_refused(tiny: WordVectors) -> None:
    with pytest.raises(UnknownWordsError, match="no words once links, mentions"):
        Encoder(tiny).encode("<@123> https://example.com")


def test_hyphenated_words_fall_back_to_their_parts(tiny: WordVectors) -> None:
    assert Encoder(tiny).encode("football-album").words == ("football", "album")


def test_casing_follows_the_model(tiny: WordVectors) -> None:
    assert Encoder(tiny).encode("FOOTBALL Goal").words == ("FOOTBALL", "Goal")


def test_real_model_weights_and_refuses_gibberish(glove: WordVectors) -> None:
    encoder = Encoder(glove)

    encoded = encoder.encode("What a goal in the last minute!")
    with pytest.raises(UnknownWordsError):
        encoder.encode("qxzvvb wqqxjk")

    weight = dict(zip(encoded.words, encoded.weights.tolist(), strict=True))
    assert weight["goal"] > 5 * weight["the"]


def test_a_repeated_word_is_kept_once_with_its_weight_multiplied(tiny: WordVectors) -> None:
    encoder = Encoder(tiny)

    once, twice = encoder.encode("football album"), encoder.encode("football album football x2")
    weight = dict(zip(twice.words, twice.weights.tolist(), strict=True))

    assert twice.words == ("football", "album")
    assert weight["football"] == pytest.approx(2 * once.weights[0])
    assert float(twice.vector @ once.vector) < 0.999  # the repeated word pulls harder


def test_a_text_contributes_at_most_max_text_words_distinct_words(glove: WordVectors) -> None:
    words = [w for w in list(glove.key_to_index)[1000:3000] if w.isalpha()][:400]
    encoder = Encoder(glove)

    encoded = encoder.encode(" ".join(words))

    assert encoded.words == tuple(words[: encoder.config.max_text_words])


def test_a_thousand_apostrophes_never_recurse(glove: WordVectors) -> None:
    # The clitic split used to recurse once per apostrophe: RecursionError past ~1,000.
    encoded = Encoder(glove).encode("a'" * 5000 + "a")

    assert set(encoded.words) <= {"a", "'a"}
    assert encoded.words[0] == "a"


def test_a_vectors_similarities_are_the_same_bit_for_bit_alone_or_among_others(
    default_model: WordVectors,
) -> None:
    encoder = Encoder(default_model)
    table = encoder.background.word_vectors
    vectors = encoder.encode_many([f"text {i} football match" for i in range(40)])
    rows = np.array([v.vector for v in vectors if not isinstance(v, UnknownWordsError)])

    alone = [similarities(table, rows[i : i + 1])[:, 0] for i in range(len(rows))]
    together = similarities(table, rows)
    shifted = similarities(table, rows[::-1])[:, ::-1]

    assert together.shape == (len(table), len(rows))
    for i, column in enumerate(alone):
        assert column.tobytes() == together[:, i].tobytes() == shifted[:, i].tobytes()
    assert np.allclose(together, table.astype(np.float64) @ rows.T.astype(np.float64), atol=1e-5)


def test_best_matches_are_each_documents_best_cosine(default_model: WordVectors) -> None:
    background = Encoder(default_model).background
    rng = np.random.default_rng(0)
    words = rng.standard_normal((MATCH_GROUP + MATCH_COLUMNS + 3, default_model.dim))
    words = (words / np.linalg.norm(words, axis=1, keepdims=True)).astype(np.float32)
    similarity = similarities(background.word_vectors, words)
    ends = [*background.starts[1:].tolist(), len(background.tokens)]

    best = background.best_matches(words)

    expected = np.array(
        [
            similarity[background.tokens[start:end]].max(axis=0)
            for start, end in zip(background.starts.tolist(), ends, strict=True)
        ]
    )
    assert best.shape == (len(background.starts), len(words))
    assert best.tobytes() == expected.tobytes()


def test_weighted_sums_add_each_documents_tokens_first_to_last() -> None:
    rng = np.random.default_rng(3)
    raw = rng.standard_normal((50, 16)).astype(np.float32)
    lengths = np.array([1, 7, 3, 40, 2, 1, 12])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    tokens = rng.integers(0, 50, int(lengths.sum())).astype(np.intp)
    weights = rng.random(int(lengths.sum())).astype(np.float32)

    sums = _weighted_sums(raw, tokens, weights, starts, lengths)

    rows = raw[tokens] * weights[:, None]
    for document, (start, length) in enumerate(zip(starts, lengths, strict=True)):
        assert np.array_equal(sums[document], np.add.reduce(rows[start : start + length], axis=0))


@pytest.mark.parametrize("model", ["glove", "default_model"])
def test_a_text_encodes_the_same_bit_for_bit_alone_or_in_a_batch(
    request: pytest.FixtureRequest, model: str
) -> None:
    encoder = Encoder(request.getfixturevalue(model))
    texts = [
        "What a goal in the last minute!",
        "goal",
        "their new album is out and the tour starts in May",
        "the minister resigned after the vote",
    ] * 5

    together = encoder.encode_many(texts)

    for text, batched in zip(texts, together, strict=True):
        alone = encoder.encode(text)
        assert isinstance(batched, type(alone))
        assert alone.vector.tobytes() == batched.vector.tobytes()
        assert alone.word_vectors.tobytes() == batched.word_vectors.tobytes()


@pytest.mark.parametrize("model", ["glove", "default_model"])
def test_rows_lose_their_common_components_the_same_bit_for_bit_in_any_block(
    request: pytest.FixtureRequest, model: str
) -> None:
    # Tables are transformed a block of rows at a time (their temporaries stay small): a row's
    # numbers must not depend on the block it falls in, or on the rows beside it.
    vectors = request.getfixturevalue(model)
    encoder = Encoder(vectors)
    rows = vectors.rows(np.arange(2 * _ROW_BLOCK + 5))

    whole = encoder._without_common(rows)

    assert whole.shape == rows.shape
    for i in (0, _ROW_BLOCK - 1, _ROW_BLOCK, 2 * _ROW_BLOCK + 4):
        assert whole[i].tobytes() == encoder._without_common(rows[i : i + 1])[0].tobytes()
    # The components are gone: each row is orthogonal to each of them (up to rounding).
    assert np.abs(whole @ encoder._common.T).max() < 1e-4 * np.abs(rows).max()


@pytest.fixture(scope="module")
def computed(default_model: WordVectors) -> Encoder:
    """The default model's encoder, its tables computed in this process."""
    return Encoder(dataclasses.replace(default_model, tables_dir=None))


class TestKeptTables:
    """An encoder's tables depend on its model and settings alone: the first process computes
    them, later ones map them (a fresh process's encoder: 0.11-0.13 s computed, 0.005 s mapped)."""

    TEXTS = ("what a goal in the final minute", "my laptop will not boot", "timezone copium")

    @staticmethod
    def _mapped(encoder: Encoder) -> bool:
        return all(isinstance(table.base, np.memmap) for table in encoder._tables())

    def _assert_same(self, encoder: Encoder, reference: Encoder) -> None:
        for table, expected in zip(encoder._tables(), reference._tables(), strict=True):
            assert table.dtype == expected.dtype
            assert table.tobytes() == expected.tobytes()
        for encoded, expected in zip(
            encoder.encode_many(self.TEXTS), reference.encode_many(self.TEXTS), strict=True
        ):
            assert not isinstance(encoded, UnknownWordsError)
            assert not isinstance(expected, UnknownWordsError)
            assert encoded.vector.tobytes() == expected.vector.tobytes()
        words = reference.encode(self.TEXTS[0]).word_vectors
        assert (
            encoder.background.best_matches(words).tobytes()
            == reference.background.best_matches(words).tobytes()
        )

    def test_a_second_encoder_maps_the_first_ones_tables_bit_for_bit(
        self, default_model: WordVectors, computed: Encoder, tmp_path: Path
    ) -> None:
        model = dataclasses.replace(default_model, tables_dir=tmp_path)

        first, second = Encoder(model), Encoder(model)

        assert not self._mapped(first)
        assert self._mapped(second)
        self._assert_same(first, computed)
        self._assert_same(second, computed)

    @pytest.mark.parametrize("damage", ["truncated", "token out of range", "missing"])
    def test_damaged_tables_are_computed_again_and_replaced(
        self, default_model: WordVectors, computed: Encoder, tmp_path: Path, damage: str
    ) -> None:
        model = dataclasses.replace(default_model, tables_dir=tmp_path)
        Encoder(model)
        (folder,) = tmp_path.iterdir()
        if damage == "truncated":
            path = folder / "word_vectors.npy"
            path.write_bytes(path.read_bytes()[: 1 << 20])
        elif damage == "token out of range":
            tokens = np.load(folder / "tokens.npy")
            tokens[-1] = len(computed.background.word_vectors)
            np.save(folder / "tokens.npy", tokens)
        else:
            (folder / "starts.npy").unlink()

        again = Encoder(model)

        assert not self._mapped(again)
        self._assert_same(again, computed)
        assert self._mapped(Encoder(model))  # whole again for the next one

    def test_other_settings_keep_their_own_tables(
        self, default_model: WordVectors, computed: Encoder, tmp_path: Path
    ) -> None:
        model = dataclasses.replace(default_model, tables_dir=tmp_path)
        Encoder(model)

        other = Encoder(model, EncoderConfig(seed=1))

        assert not self._mapped(other)
        assert len(list(tmp_path.iterdir())) == 2
        assert other._offset.tobytes() != computed._offset.tobytes()
        self._assert_same(Encoder(model), computed)

    def test_a_folder_that_cannot_be_written_only_costs_the_computation(
        self, default_model: WordVectors, computed: Encoder, tmp_path: Path
    ) -> None:
        (tmp_path / "a file").write_text("not a folder")
        model = dataclasses.replace(default_model, tables_dir=tmp_path / "a file" / "tables")

        self._assert_same(Encoder(model), computed)
        assert not self._mapped(Encoder(model))

    def test_a_write_that_fails_midway_leaves_no_part_of_a_file(self, tmp_path: Path) -> None:
        # A real fault: the process may write no file past 2 MB (a full disk fails the same
        # way), so the 4 MB table fails half written.
        code = f"""
import resource, signal
import zsl
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, resource.RLIM_INFINITY))
encoder = zsl.Encoder(zsl.load_vectors(cache_dir={str(tmp_path)!r}))
print(encoder.encode("what a goal").words)
"""
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
        )

        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "('what', 'a', 'goal')"
        (folder,) = (tmp_path / "tables").glob("*/encoder-*")
        assert sorted(p.name for p in folder.iterdir()) == ["common.npy", "offset.npy"]
