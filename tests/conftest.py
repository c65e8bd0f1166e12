"""Shared fixtures: tiny hand-made vectors for unit tests, the real default model for
integration tests, and a private model cache so tests never touch the user's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from zsl import WordVectors, load_vectors

# Four dimensions: sport, music, politics, and "ordinary text" (what function words share).
# Function words come first (most frequent), as in a real model's frequency order.
TINY_WORDS: dict[str, tuple[float, float, float, float]] = {
    "the": (0.1, 0.1, 0.1, 1.0),
    "a": (0.1, 0.0, 0.1, 1.0),
    "and": (0.0, 0.1, 0.1, 1.0),
    "is": (0.1, 0.1, 0.0, 1.0),
    "game": (0.8, 0.3, 0.0, 0.3),
    "song": (0.1, 0.9, 0.0, 0.3),
    "vote": (0.0, 0.0, 0.9, 0.3),
    "team": (0.9, 0.0, 0.2, 0.2),
    "band": (0.1, 0.9, 0.1, 0.2),
    "election": (0.0, 0.1, 1.0, 0.2),
    "football": (1.0, 0.0, 0.0, 0.1),
    "goal": (0.9, 0.0, 0.1, 0.2),
    "album": (0.0, 1.0, 0.0, 0.1),
    "concert": (0.1, 0.9, 0.0, 0.1),
    "minister": (0.0, 0.0, 1.0, 0.1),
    "sports": (1.0, 0.1, 0.0, 0.1),
    "music": (0.0, 1.0, 0.1, 0.1),
    "politics": (0.1, 0.0, 1.0, 0.1),
}


def make_vectors(words: dict[str, tuple[float, ...]], name: str = "tiny") -> WordVectors:
    matrix = np.array(list(words.values()), dtype=np.float32)
    return WordVectors(name=name, vectors=matrix, key_to_index={w: i for i, w in enumerate(words)})


@pytest.fixture
def tiny() -> WordVectors:
    return make_vectors(TINY_WORDS)


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Reuse a cache given by the runner (CI converts the default model once); otherwise one
    # per test session, never the user's own.
    if not os.environ.get("ZSL_CACHE_DIR"):
        os.environ["ZSL_CACHE_DIR"] = str(tmp_path_factory.mktemp("zsl-cache"))
    os.environ.pop("ZSL_MODEL", None)
    os.environ.pop("ZSL_DATABASE_URL", None)
    yield


@pytest.fixture(scope="session")
def glove(_private_model_cache: None) -> WordVectors:
    """The real default model (GloVe 6B 50d), converted once per cache and memory-mapped."""
    return load_vectors()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/zsl.sqlite3"
