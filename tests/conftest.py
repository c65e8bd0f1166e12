"""Shared fixtures: tiny hand-made vectors for unit tests, the real default model for
integration tests, and a private model cache so tests never touch the user's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from zsl import GLOVE_MODEL, WordVectors, load_vectors

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


def _with_ordinary_words(
    words: dict[str, tuple[float, float, float, float]],
) -> dict[str, tuple[float, ...]]:
    # Real vocabularies hold thousands of ordinary words between the function words and the
    # topic words; without them "ordinary text" would be made of topic words. These sit on
    # the ordinary-text axis with a little spread, ranked after the four function words.
    rng = np.random.default_rng(0)
    ordinary = {f"word{i:03d}": (*(0.3 * rng.standard_normal(3)).tolist(), 1.0) for i in range(300)}
    items = list(words.items())
    return dict(items[:4] + list(ordinary.items()) + items[4:])


@pytest.fixture
def tiny() -> WordVectors:
    return make_vectors(_with_ordinary_words(TINY_WORDS))


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Reuse a cache given by the runner (CI converts the default model once); otherwise one
    # per test session, never the user's own.
    if not os.environ.get("ZSL_CACHE_DIR"):
        os.environ["ZSL_CACHE_DIR"] = str(tmp_path_factory.mktemp("zsl-cache"))
    os.environ.pop("ZSL_MODEL", None)
    os.environ.pop("ZSL_DATABASE_URL", None)


@pytest.fixture(scope="session")
def glove(_private_model_cache: None) -> WordVectors:
    """GloVe 6B 50d (the glove extra), converted once per cache and memory-mapped: the model
    most behaviour tests were written against, kept so that their expectations stay exact."""
    return load_vectors(GLOVE_MODEL, cache_dir=os.environ["ZSL_CACHE_DIR"])


@pytest.fixture(scope="session")
def default_model(_private_model_cache: None) -> WordVectors:
    """The real default model, shipped in the package and memory-mapped where it lies."""
    return load_vectors(cache_dir=os.environ["ZSL_CACHE_DIR"])


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/zsl.sqlite3"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server: $ZSL_TEST_POSTGRES_URL, or a throwaway cluster started here."""
    from tests.support.postgres import temporary_cluster

    given = os.environ.get("ZSL_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    try:
        cluster = temporary_cluster()
        url = cluster.__enter__()
    except FileNotFoundError as exc:
        if os.environ.get("ZSL_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here: {exc}")
        pytest.skip(f"{exc}; install Debian's postgresql package to run these tests")
    try:
        yield url
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    import asyncio
    import uuid

    import asyncpg

    name = f"zsl_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        db = await asyncpg.connect(postgres_server)
        try:
            await db.execute(sql)
        finally:
            await db.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_server.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs against both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/zsl.sqlite3"
    return str(request.getfixturevalue("pg_url"))
