"""Our memory-mapped model format: a vocabulary shared between processes, no gensim to load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from gensim.models import KeyedVectors
from hypothesis import given, settings
from hypothesis import strategies as st

from zsl import ModelError, WordVectors, load_vectors
from zsl.vectors import MappedVocabulary, convert, save_mapped

WORDS = ["the", "Football", "goal", "café", "naïve", "東京", "e-sports", "don't", "🎮", "a b"]


def _saved(tmp_path: Path, words: list[str], counts: np.ndarray | None = None) -> WordVectors:
    matrix = np.arange(len(words) * 3, dtype=np.float32).reshape(len(words), 3)
    save_mapped(words, matrix, tmp_path / "m.zslv", counts)
    return load_vectors(tmp_path / "m.zslv")


class TestMappedVocabulary:
    def test_behaves_like_the_dict_it_replaces(self, tmp_path: Path) -> None:
        expected = {w: i for i, w in enumerate(WORDS)}

        vocabulary = _saved(tmp_path, WORDS).key_to_index

        assert isinstance(vocabulary, MappedVocabulary)
        assert len(vocabulary) == len(expected)
        assert list(vocabulary) == WORDS
        assert dict(vocabulary.items()) == expected
        assert list(vocabulary.values()) == list(range(len(WORDS)))
        assert vocabulary == expected
        assert all(vocabulary[w] == i and vocabulary.get(w) == i for w, i in expected.items())
        assert "東京" in vocabulary
        assert "football" not in vocabulary  # exact keys, as in a dict; index() tries casings
        assert vocabulary.get("missing") is None
        assert vocabulary.get(42) is None  # type: ignore[call-overload]
        with pytest.raises(KeyError):
            vocabulary["missing"]

    @settings(max_examples=30, deadline=None)
    @given(st.sets(st.text(min_size=1, max_size=12), min_size=1, max_size=300))
    def test_every_word_finds_its_row(
        self, tmp_path_factory: pytest.TempPathFactory, words: set[str]
    ) -> None:
        ordered = sorted(words)

        loaded = _saved(tmp_path_factory.mktemp("m"), ordered)

        assert [loaded.key_to_index.get(w) for w in ordered] == list(range(len(ordered)))
        assert all(loaded.key_to_index.get(w + "\x00") is None for w in ordered)

    def test_index_tries_the_spellings_a_model_may_use(self, tmp_path: Path) -> None:
        loaded = _saved(tmp_path, WORDS)

        assert loaded.index("football") == loaded.index("FOOTBALL") == WORDS.index("Football")
        assert loaded.index("Goal") == WORDS.index("goal")

    def test_vectors_and_counts_are_read_only_memory_maps(self, tmp_path: Path) -> None:
        counts = np.arange(len(WORDS), 0, -1, dtype=np.float64) * 7

        loaded = _saved(tmp_path, WORDS, counts)

        assert isinstance(loaded.vectors, np.memmap)
        assert not loaded.vectors.flags.writeable
        np.testing.assert_array_equal(loaded.vectors[WORDS.index("café")], [9, 10, 11])
        assert loaded.counts is not None
        np.testing.assert_array_equal(loaded.counts, counts)


class TestMappedFiles:
    def test_convert_to_zslv_keeps_every_vector(self, tmp_path: Path) -> None:
        kv = KeyedVectors(3)
        kv.add_vectors(WORDS[:6], np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32))
        kv.save_word2vec_format(str(tmp_path / "m.txt"))

        converted = convert(tmp_path / "m.txt", tmp_path / "m.zslv")
        reloaded = load_vectors(tmp_path / "m.zslv")

        for loaded in (converted, reloaded):
            for word in WORDS[:6]:
                np.testing.assert_allclose(loaded.vectors[loaded.key_to_index[word]], kv[word])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m.txt", "m.zslv"]

    def test_a_zslv_file_converts_back_to_other_formats(self, tmp_path: Path) -> None:
        _saved(tmp_path, WORDS)

        again = convert(tmp_path / "m.zslv", tmp_path / "again.kv")

        assert list(again.key_to_index) == WORDS
        np.testing.assert_array_equal(again.vectors, load_vectors(tmp_path / "m.zslv").vectors)

    @pytest.mark.parametrize("keep", [0, 12, 100, -40])
    def test_a_truncated_file_is_reported_as_corrupt(self, tmp_path: Path, keep: int) -> None:
        save_mapped(WORDS, np.ones((len(WORDS), 3), np.float32), tmp_path / "m.zslv")
        data = (tmp_path / "m.zslv").read_bytes()
        (tmp_path / "m.zslv").write_bytes(data[:keep] if keep else b"ZSLVEC\x00\x01")

        with pytest.raises(ModelError, match="corrupt"):
            load_vectors(tmp_path / "m.zslv")

    def test_a_tables_vector_share_is_kept_in_its_file(self, tmp_path: Path) -> None:
        matrix = np.ones((len(WORDS), 3), np.float32)
        save_mapped(WORDS, matrix, tmp_path / "plain.zslv")
        save_mapped(WORDS, matrix, tmp_path / "refined.zslv", vector_share=0.7)

        assert load_vectors(tmp_path / "plain.zslv").vector_share == 0.5
        assert load_vectors(tmp_path / "refined.zslv").vector_share == 0.7
        assert load_vectors().vector_share == 0.7  # the shipped table is refined

    @pytest.mark.parametrize("share", [0.0, 1.0, 1.5])
    def test_a_vector_share_out_of_range_is_refused_written_and_read(
        self, tmp_path: Path, share: float
    ) -> None:
        matrix = np.ones((len(WORDS), 3), np.float32)
        with pytest.raises(ValueError, match="vector_share"):
            save_mapped(WORDS, matrix, tmp_path / "bad.zslv", vector_share=share)
        assert not (tmp_path / "bad.zslv").exists()
        save_mapped(WORDS, matrix, tmp_path / "m.zslv", vector_share=0.7)
        data = (tmp_path / "m.zslv").read_bytes()
        # The same header length: only the number's three characters change.
        (tmp_path / "m.zslv").write_bytes(
            data.replace(b'"vector_share": 0.7', b'"vector_share": %.1f' % share, 1)
        )

        with pytest.raises(ModelError, match="corrupt"):
            load_vectors(tmp_path / "m.zslv")

    def test_the_default_model_loads_without_importing_gensim(
        self, default_model: WordVectors
    ) -> None:
        code = (
            "import os, sys, zsl; v = zsl.load_vectors(cache_dir=os.environ['ZSL_CACHE_DIR']); "
            "print(len(v), v.index('football') is not None, 'gensim' in sys.modules)"
        )

        out = subprocess.run(
            [sys.executable, "-c", code],
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout

        assert out.split() == [str(len(default_model)), "True", "False"]


class TestQuantisedTables:
    """int8 rows with one scale each, and WordPiece pieces for the words a table lacks."""

    WORDS: ClassVar[list[str]] = ["time", "play", "pok", "e", "##zone", "##mon", "##s", "##e"]

    def _saved(self, tmp_path: Path, pieces_from: int | None = 4) -> WordVectors:
        rows = np.array([[1, 0], [0, 2], [3, 3], [1, 1], [0, 4], [5, 0], [1, -1], [-2, 0]], np.int8)
        scales = np.arange(1, len(self.WORDS) + 1, dtype=np.float32) / 10
        save_mapped(self.WORDS, rows, tmp_path / "q.zslv", scales=scales, pieces_from=pieces_from)
        return load_vectors(tmp_path / "q.zslv")

    def test_rows_are_the_int8_values_times_their_scale(self, tmp_path: Path) -> None:
        model = self._saved(tmp_path)

        assert model.vectors.dtype == np.int8
        np.testing.assert_allclose(model.rows(np.array([0, 2])), [[0.1, 0.0], [0.9, 0.9]])

    def test_an_unknown_word_is_the_mean_of_its_pieces(self, tmp_path: Path) -> None:
        model = self._saved(tmp_path)
        assert model.subword_vector is not None

        # time + ##zone: (0.1, 0) and (0, 2.0). Pokémon, once lower-cased without its accent, is
        # pok + ##e + ##mon: (0.9, 0.9), (-1.6, 0) and (3.0, 0), longest piece first.
        np.testing.assert_allclose(model.subword_vector("timezone"), [0.05, 1.0])
        np.testing.assert_allclose(model.subword_vector("Pokémon"), [2.3 / 3, 0.3], rtol=1e-6)
        np.testing.assert_allclose(model.subword_vector("plays"), [0.35, -0.15], rtol=1e-6)

    def test_a_word_no_piece_covers_gets_an_empty_vector(self, tmp_path: Path) -> None:
        model = self._saved(tmp_path)
        assert model.subword_vector is not None

        assert model.subword_vector("timex").size == 0  # no piece "##x"
        assert model.subword_vector("zone").size == 0  # "##zone" only continues a word
        assert model.subword_vector("x" * 10_000).size == 0
        assert model.subword_vector("timeee").size == 0  # time + ##e + ##e: mostly letters

    def test_a_table_without_pieces_builds_nothing(self, tmp_path: Path) -> None:
        assert self._saved(tmp_path, pieces_from=None).subword_vector is None

    def test_equal_inputs_give_identical_files(self, tmp_path: Path) -> None:
        self._saved(tmp_path / "one")
        self._saved(tmp_path / "two")

        assert (tmp_path / "one" / "q.zslv").read_bytes() == (
            tmp_path / "two" / "q.zslv"
        ).read_bytes()

    def test_int8_rows_without_scales_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="int8"):
            save_mapped(["a"], np.ones((1, 2), np.int8), tmp_path / "q.zslv")
        with pytest.raises(ValueError, match="pieces_from"):
            save_mapped(
                ["##a", "b"], np.ones((2, 2), np.float32), tmp_path / "q.zslv", pieces_from=0
            )
