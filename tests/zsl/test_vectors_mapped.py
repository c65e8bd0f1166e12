"""Our memory-mapped model format: a vocabulary shared between processes, no gensim to load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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

    def test_the_default_model_loads_without_importing_gensim(self, glove: WordVectors) -> None:
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

        assert out.split() == ["400000", "True", "False"]
