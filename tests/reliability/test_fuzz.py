"""Bad input, fuzzed: every call succeeds or raises a ZslError with one plain sentence.

Nothing else escapes, nothing hangs (each call has a timeout), and a refused write leaves the
registry as it was, both the service's snapshot and the database. Example counts are per test
(``examples``); ``HYPOTHESIS_PROFILE=ci`` fixes the seed, ``thorough`` runs ten times as many.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import TINY_WORDS, _with_ordinary_words, make_vectors
from tests.reliability.conftest import examples
from tests.reliability.support import (
    AWKWARD_UNITS,
    KNOWN,
    Loop,
    any_text,
    assert_plain,
    huge_text,
    nasty_text,
    within,
)
from zsl import (
    DEFAULT_THRESHOLD,
    ClassDefinition,
    ClassNotFoundError,
    DuplicateClassError,
    InvalidClassError,
    Limits,
    WordVectors,
    ZeroShotService,
    ZslError,
    tokenize,
)
from zsl.classes import validate_class
from zsl.cli import read_class_file
from zsl.evaluation import read_dataset
from zsl.records import name_key
from zsl.store import open_store

WORD = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*")
LIMITS = Limits(classes_per_guild=6)  # small, so the limit is reached often


# -- the tokenizer ------------------------------------------------------------------------------


class TestTokenizer:
    @settings(max_examples=examples(3000))
    @given(any_text())
    def test_any_text_gives_plain_words(self, text: str) -> None:
        tokens = within(10, tokenize, text)

        assert isinstance(tokens, list)
        for token in tokens:
            assert WORD.fullmatch(token), repr(token)
            assert not any(unicodedata.category(ch) in ("Cf", "Cs", "Co") for ch in token)

    @pytest.mark.parametrize("unit", AWKWARD_UNITS)
    def test_megabytes_of_one_awkward_piece_do_not_hang(self, unit: str) -> None:
        text = unit * (1_000_000 // len(unit))

        tokens = within(30, tokenize, text)

        assert all(WORD.fullmatch(token) for token in tokens)

    @settings(max_examples=examples(1000))
    @given(any_text())
    def test_tokens_are_stable_when_joined_again(self, text: str) -> None:
        tokens = within(10, tokenize, text)

        assert within(10, tokenize, " ".join(tokens)) == tokens

    @settings(max_examples=examples(500))
    @given(
        st.lists(st.sampled_from(KNOWN), max_size=5),
        st.sampled_from(
            [
                "```{}```",
                "```py\n{}\n```",
                "`{}`",
                "https://example.com/{}",
                "www.{}.com",
                "<@{}>",
                "<#{}>",
                "</{}:1>",
            ]
        ),
        st.lists(st.sampled_from(KNOWN), max_size=5),
    )
    def test_code_links_and_mentions_leave_no_word(
        self, before: list[str], markup: str, after: list[str]
    ) -> None:
        text = " ".join([*before, markup.format("zqxhidden"), *after])

        tokens = within(10, tokenize, text)

        assert "zqxhidden" not in tokens
        assert tokens == before + after


# -- the CLI readers ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(codec=None)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
class_file_bodies = st.one_of(
    json_values.map(json.dumps),
    st.dictionaries(nasty_text(4), nasty_text(6), max_size=5).map(json.dumps),
    st.lists(
        st.fixed_dictionaries({"name": nasty_text(4)}, optional={"description": json_values}),
        max_size=4,
    ).map(json.dumps),
    nasty_text(),
    st.text(),
    st.builds(lambda n: "[" * n + "]" * n, st.integers(1, 20_000)),
    st.builds(lambda n: "1" * n, st.integers(1, 10_000)),
    st.just('{"a": "b", "a": "c"}'),
    st.just("\ufeff{}"),
)


def _write(path: Path, body: str | bytes) -> None:
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_bytes(body.encode("utf-8", "surrogatepass"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder whose files every example overwrites (a folder per example is slow)."""
    return tmp_path_factory.mktemp("readers")


class TestCliReaders:
    @settings(max_examples=examples(1200))
    @given(
        body=st.one_of(class_file_bodies, st.binary(max_size=200)),
        suffix=st.sampled_from([".json", ".JSON", ".tsv", ".txt", ""]),
    )
    def test_class_file_reads_or_refuses_plainly(
        self, scratch: Path, body: str | bytes, suffix: str
    ) -> None:
        path = scratch / f"classes{suffix}"
        _write(path, body)

        try:
            pairs = within(20, read_class_file, path)
        except BaseException as exc:
            assert_plain(exc)
            return

        assert all(isinstance(n, str) and isinstance(d, str) for n, d in pairs)

    @settings(max_examples=examples(800))
    @given(
        labels=st.one_of(nasty_text(), st.text(), st.binary(max_size=50), st.none()),
        rows=st.one_of(nasty_text(), st.text(), st.binary(max_size=50), st.none()),
        descriptions=st.one_of(nasty_text(), st.text(), st.binary(max_size=50), st.none()),
        names_only=st.booleans(),
    )
    def test_dataset_reads_or_refuses_plainly(
        self,
        scratch: Path,
        labels: str | bytes | None,
        rows: str | bytes | None,
        descriptions: str | bytes | None,
        names_only: bool,
    ) -> None:
        folder = scratch
        for name, body in (
            ("labels.txt", labels),
            ("test.tsv", rows),
            ("descriptions.tsv", descriptions),
        ):
            (folder / name).unlink(missing_ok=True)
            if body is not None:
                _write(folder / name, body)

        try:
            data = within(20, read_dataset, folder, names_only)
        except BaseException as exc:
            assert_plain(exc)
            return

        assert data.labels
        assert all(label.strip() == label for label in data.labels)
        assert all(isinstance(gold, str) and isinstance(text, str) for gold, text in data.rows)

    def test_missing_folder_and_folder_as_file_are_refused_plainly(self, tmp_path: Path) -> None:
        (tmp_path / "labels.txt").mkdir()

        for call in (
            lambda: read_dataset(tmp_path / "missing", False),
            lambda: read_dataset(tmp_path, False),
            lambda: read_class_file(tmp_path / "missing.json"),
            lambda: read_class_file(tmp_path),
        ):
            with pytest.raises(ZslError) as caught:
                call()
            assert_plain(caught.value)


# -- the service --------------------------------------------------------------------------------


class Harness:
    """A service reused across examples; every example gets a guild never used before."""

    def __init__(self, vectors: WordVectors, url: str) -> None:
        self.loop = Loop()
        self.service = self.loop.run(ZeroShotService.open(vectors, url, limits=LIMITS))
        self._guilds = count(10_000)

    def new_guild(self) -> int:
        return next(self._guilds)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        """(True, result) or (False, the ZslError); fails on anything else."""
        try:
            return True, self.loop.run(fn(*args, **kwargs))
        except BaseException as exc:
            assert_plain(exc)
            return False, exc

    def registry(self, guild_id: int) -> tuple[tuple[ClassDefinition, ...], float]:
        """The guild as the service sees it, after checking the database agrees."""
        snapshot = (
            self.loop.run(self.service.classes(guild_id)),
            self.loop.run(self.service.threshold(guild_id)),
        )
        record = self.loop.run(self.service.store.load_guild(guild_id))
        stored = (
            record.classes,
            DEFAULT_THRESHOLD if record.threshold is None else record.threshold,
        )
        assert snapshot == stored, "the snapshot and the database disagree"
        return snapshot

    def close(self) -> None:
        self.loop.run(self.service.close())
        self.loop.close()


@pytest.fixture(scope="module")
def fast_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real SQLite file, in memory-backed /dev/shm when there is one: this part tests input
    handling, not the disk, and thousands of fsyncs would dominate its run time."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="zsl-fuzz-", dir=shm))
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def real(glove: WordVectors, fast_folder: Path) -> Iterator[Harness]:
    harness = Harness(glove, f"sqlite:///{fast_folder}/real.sqlite3")
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def small(fast_folder: Path) -> Iterator[Harness]:
    vectors = make_vectors(_with_ordinary_words(TINY_WORDS))
    harness = Harness(vectors, f"sqlite:///{fast_folder}/tiny.sqlite3")
    yield harness
    harness.close()


FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in map(chr, range(0x21, 0x7F))}
VARIANTS: list[Callable[[str], str]] = [
    str.upper,
    str.lower,
    str.swapcase,
    str.title,
    lambda n: f"  {n}\t",
    lambda n: n.replace(" ", " \u00a0 "),
    lambda n: "\u200b".join(n),
    lambda n: n + "\u200d\ufeff",
    lambda n: "".join(FULLWIDTH.get(c, c) for c in n),
    lambda n: unicodedata.normalize("NFD", n),
]


FRESH_NAMES = st.one_of(
    st.sampled_from(KNOWN),
    nasty_text(4),
    st.text(max_size=60),
    st.text(st.characters(codec=None), max_size=8),
    huge_text(),
)
VARIANT_OF = st.tuples(st.integers(0, LIMITS.classes_per_guild - 1), st.sampled_from(VARIANTS))
DESCRIPTIONS = st.one_of(
    st.lists(st.sampled_from(KNOWN), min_size=1, max_size=6).map(" ".join),
    nasty_text(),
    any_text(),
)
THRESHOLDS = st.one_of(st.none(), st.floats(), st.floats(0, 1), st.sampled_from([0, 1, -0.0]))
OPS = st.sampled_from(["add", "add", "edit", "remove", "threshold", "classify"])
TEXTS = any_text()
TOP_K = st.integers(-2, 30)


def draw_name(data: st.DataObject, existing: tuple[ClassDefinition, ...]) -> str:
    """An arbitrary name, or (half the time) one that differs from an existing one only in
    case or spacing. The strategies are built once: building them per draw is slow."""
    if existing and data.draw(st.booleans()):
        index, variant = data.draw(VARIANT_OF)
        return variant(existing[index % len(existing)].name)
    return data.draw(FRESH_NAMES)


def check_classification(result: Any, registry: tuple[ClassDefinition, ...], top_k: int) -> None:
    names_ = [p.name for p in result.predictions]
    assert 1 <= len(names_) <= min(top_k, len(registry))
    assert set(names_) <= {d.name for d in registry}
    scores = [p.score for p in result.predictions]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= p.confidence <= 1.0 for p in result.predictions)


def run_ops(harness: Harness, data: st.DataObject, steps: int) -> None:
    """Random mixed calls on a fresh guild, checking each against the registry before it."""
    service = harness.service
    guild = harness.new_guild()
    for _ in range(steps):
        before, threshold = harness.registry(guild)
        op = data.draw(OPS)
        if op == "add":
            name, description = draw_name(data, before), data.draw(DESCRIPTIONS)
            ok, value = harness.call(service.add_class, guild, name, description)
            expected = (*before, value) if ok else before
            if ok:
                assert value.key, f"a class without a name was added: {value!r}"
                assert value.key not in {d.key for d in before}
                assert len(before) < LIMITS.classes_per_guild
            elif any(d.key == name_key(name) for d in before):
                assert isinstance(value, DuplicateClassError | InvalidClassError), value
        elif op == "edit":
            name = draw_name(data, before)
            new_name = None if data.draw(st.booleans()) else draw_name(data, before)
            description = None if data.draw(st.booleans()) else data.draw(DESCRIPTIONS)
            ok, value = harness.call(
                service.edit_class, guild, name, new_name=new_name, description=description
            )
            expected = before
            if ok:
                index = next(i for i, d in enumerate(before) if d.key == name_key(name))
                expected = (*before[:index], value, *before[index + 1 :])
                assert value.key, f"a class without a name was made: {value!r}"
            elif not any(d.key == name_key(name) for d in before):
                assert isinstance(value, ClassNotFoundError), value
        elif op == "remove":
            name = draw_name(data, before)
            ok, value = harness.call(service.remove_class, guild, name)
            expected = tuple(d for d in before if d != value) if ok else before
            if ok:
                assert value in before
                assert value.key == name_key(name)
            else:
                assert isinstance(value, ClassNotFoundError), value
        elif op == "threshold":
            wanted = data.draw(THRESHOLDS)
            ok, value = harness.call(service.set_threshold, guild, wanted)
            if ok:
                threshold = DEFAULT_THRESHOLD if wanted is None else wanted
                assert value == threshold
            expected = before
        else:
            text, top_k = data.draw(TEXTS), data.draw(TOP_K)
            ok, value = harness.call(service.classify, guild, text, top_k)
            if ok:
                check_classification(value, before, top_k)
            expected = before

        assert harness.registry(guild) == (expected, threshold), f"after {op}"


class TestService:
    @settings(max_examples=examples(1500))
    @given(st.data())
    def test_mixed_calls_with_the_tiny_model(self, small: Harness, data: st.DataObject) -> None:
        run_ops(small, data, steps=data.draw(st.integers(1, 6)))

    @settings(max_examples=examples(300))
    @given(st.data())
    def test_mixed_calls_with_the_real_model(self, real: Harness, data: st.DataObject) -> None:
        run_ops(real, data, steps=data.draw(st.integers(1, 6)))

    @settings(max_examples=examples(1800))
    @given(text=any_text(), top_k=st.integers(-5, 40), which=st.integers(0, 2))
    def test_classify_anything(self, real: Harness, text: str, top_k: int, which: int) -> None:
        guild = 1 + which  # 1 and 2 hold classes, 3 holds none
        if not real.loop.run(real.service.classes(1)):
            for name, description in [
                ("sports", "football match team goal"),
                ("music", "song album band concert"),
                ("SQL'; DROP TABLE classes;--", "database query table"),
            ]:
                real.loop.run(real.service.add_class(1, name, description))
            real.loop.run(real.service.add_class(2, "\u05e9\u05dc\u05d5\u05dd peace", "peace"))
        before = real.registry(guild)

        ok, value = real.call(real.service.classify, guild, text, top_k)

        if ok:
            check_classification(value, before[0], top_k)
        assert real.registry(guild) == before

    @settings(max_examples=examples(300))
    @given(
        name=st.sampled_from(["sports", "video games", "Ab Cd"]), variant=st.sampled_from(VARIANTS)
    )
    def test_names_differing_in_case_or_spacing_are_one_class(
        self, small: Harness, name: str, variant: Callable[[str], str]
    ) -> None:
        guild = small.new_guild()
        small.loop.run(small.service.add_class(guild, name, "game team"))
        before = small.registry(guild)

        ok, error = small.call(small.service.add_class, guild, variant(name), "song")
        removed = small.loop.run(small.service.remove_class(guild, variant(name)))

        assert not ok
        assert isinstance(error, DuplicateClassError | InvalidClassError), error
        assert before[0] == (ClassDefinition(name, "game team"),)
        assert removed == ClassDefinition(name, "game team")
        assert small.registry(guild) == ((), DEFAULT_THRESHOLD)


@pytest.mark.parametrize("name", ["\ue000", "\u0378", "\U000f0000 \ue001"])
def test_validation_refuses_a_name_without_a_visible_character(name: str) -> None:
    with pytest.raises(InvalidClassError):
        validate_class(name, "football", Limits())


@pytest.mark.parametrize("name", ["\ue000", "\u0378", "\U000f0000 \ue001"])
def test_a_name_without_a_visible_character_is_refused_and_nothing_changes(
    small: Harness, name: str
) -> None:
    guild = small.new_guild()

    ok, error = small.call(small.service.add_class, guild, name, "football")
    small.loop.run(small.service.add_class(guild, "sports", "game"))
    renamed, rename_error = small.call(small.service.edit_class, guild, "sports", new_name=name)

    assert not ok
    assert isinstance(error, InvalidClassError), error
    assert not renamed
    assert isinstance(rename_error, InvalidClassError), rename_error
    assert small.registry(guild) == ((ClassDefinition("sports", "game"),), DEFAULT_THRESHOLD)
    assert small.loop.run(small.service.store.integrity_check()) == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "definition",
    [
        ClassDefinition("\ud800"),
        ClassDefinition("ok", "\udfff"),
        ClassDefinition("nul\x00name"),
        ClassDefinition("ok", "nul\x00"),
        ClassDefinition("\ue000"),
    ],
)
async def test_store_refuses_what_it_cannot_hold(
    store_url: str, definition: ClassDefinition
) -> None:
    """The store is also called directly (CLI, other tools): no foreign exception escapes."""
    store = await open_store(store_url)
    try:
        await store.insert_class(1, ClassDefinition("sports", "game"), 10)

        with pytest.raises(ZslError) as inserted:
            await store.insert_class(1, definition, 10)
        with pytest.raises(ZslError) as replaced:
            await store.replace_class(1, "sports", definition)

        assert_plain(inserted.value)
        assert_plain(replaced.value)
        assert (await store.load_guild(1)).classes == (ClassDefinition("sports", "game"),)
        assert await store.integrity_check() == []
    finally:
        await store.close()


def test_unknown_words_message_stays_short() -> None:
    from zsl import UnknownWordsError

    error = UnknownWordsError(["x" * 5000, "y\u202e" * 100, *map(str, range(50))])

    assert_plain(error)


def test_not_found_message_does_not_echo_line_breaks_or_huge_names() -> None:
    error = ClassNotFoundError("a\nb\x00" + "c" * 10_000)

    assert_plain(error)
    assert error.name.startswith("a\nb")  # the attribute keeps what was asked for
