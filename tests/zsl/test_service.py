from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import zsl.service
from tests.conftest import TINY_WORDS, make_vectors
from zsl import (
    ClassFileError,
    ClassLimitError,
    ClassNotFoundError,
    DuplicateClassError,
    InvalidClassError,
    InvalidTextError,
    Limits,
    NoClassesError,
    UnknownWordsError,
    WordVectors,
    ZeroShotService,
    ZslError,
)
from zsl.records import ClassDefinition
from zsl.store import open_store

pytestmark = pytest.mark.asyncio

TOPICS = [
    ("sports", "football match team goal"),
    ("music", "song album band concert"),
    ("politics", "election government vote minister"),
    ("cooking", "recipe bake oven kitchen"),
]


async def _service(vectors: WordVectors, url: str, **kwargs: Any) -> ZeroShotService:
    service = await ZeroShotService.open(vectors, url, **kwargs)
    for name, description in TOPICS:
        await service.add_class(1, name, description)
    return service


async def _state(service: ZeroShotService, url: str) -> tuple[Any, Any]:
    store = await open_store(url)
    stored = await store.load_all()
    await store.close()
    return {g: await service.classes(g) for g in await service.guild_ids()}, stored


class TestWithTheRealModel:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("What a goal in the last minute!", "sports"),
            ("their new album is out and the tour starts in May", "music"),
            ("the minister resigned after the vote", "politics"),
            ("preheat the oven and bake for 20 minutes", "cooking"),
        ],
    )
    async def test_classifies(
        self, glove: WordVectors, db_url: str, text: str, expected: str
    ) -> None:
        async with await _service(glove, db_url) as service:
            result = await service.classify(1, text)

        assert result.top.name == expected
        assert not result.abstained

    async def test_a_text_of_a_thousand_apostrophes_is_classified_and_taught(
        self, glove: WordVectors, db_url: str
    ) -> None:
        # 1,979 characters that once made the word lookup recurse past Python's limit.
        hostile = "a'" * 990 + "a"
        async with await _service(glove, db_url) as service:
            results = await asyncio.gather(
                service.classify(1, hostile), service.classify(1, "What a goal!")
            )
            taught = await service.add_example(1, "sports", hostile)

        assert results[0].predictions
        assert results[1].top.name == "sports"
        assert taught.examples == (hostile,)

    async def test_classes_are_per_guild(self, glove: WordVectors, db_url: str) -> None:
        async with await _service(glove, db_url) as service:
            await service.add_class(2, "weather", "rain snow sunny forecast")

            first = await service.classify(1, "heavy rain and snow tomorrow", top_k=25)
            second = await service.classify(2, "What a goal!", top_k=25)
            with pytest.raises(NoClassesError):
                await service.classify(3, "anything")

        assert "weather" not in [p.name for p in first.predictions]
        assert [p.name for p in second.predictions] == ["weather"]

    async def test_reopening_gives_back_every_class(
        self, glove: WordVectors, store_url: str
    ) -> None:
        db_url = store_url
        async with await _service(glove, db_url) as service:
            await service.set_threshold(1, 0.3)
            before = await service.classes(1)

        async with await ZeroShotService.open(glove, db_url) as reopened:
            after = await reopened.classes(1)
            threshold = await reopened.threshold(1)
            result = await reopened.classify(1, "the band played our favourite song")

        assert after == before == tuple(ClassDefinition(n, d) for n, d in TOPICS)
        assert threshold == 0.3
        assert result.top.name == "music"

    async def test_classes_survive_a_model_change(self, glove: WordVectors, db_url: str) -> None:
        async with await _service(glove, db_url):
            pass

        # The tiny model knows sports/music/politics words but nothing about cooking.
        async with await ZeroShotService.open(make_vectors(TINY_WORDS), db_url) as other:
            before_use = await other.classes(1)
            result = await other.classify(1, "football goal", top_k=5)
            under_tiny = await other.classes(1)
        async with await ZeroShotService.open(glove, db_url) as back:
            under_glove = await back.classes(1)
            cooking = await back.classify(1, "preheat the oven and bake for 20 minutes")
        async with await ZeroShotService.open(make_vectors(TINY_WORDS), db_url) as other:
            await other.edit_class(1, "cooking", description="football")  # usable again
            edited = await other.classify(1, "football goal", top_k=5)

        unrelated = {w: tuple(float(w == v) for v in "abcd") for w in "abcd"}
        async with await ZeroShotService.open(make_vectors(unrelated), db_url) as blank:
            with pytest.raises(NoClassesError, match="can be used with the current model"):
                await blank.classify(1, "a b c")
            listed_blank = await blank.classes(1)

        # Cooking is dormant under the tiny model: still listed, never predicted.
        assert [d.name for d in listed_blank] == [n for n, _ in TOPICS]
        assert [d.name for d in before_use] == [n for n, _ in TOPICS]
        assert sorted(d.name for d in under_tiny) == sorted(n for n, _ in TOPICS)
        assert [p.name for p in result.predictions] == ["sports", "music", "politics"]
        assert "cooking" in [p.name for p in edited.predictions]
        assert [d.name for d in under_glove] == [n for n, _ in TOPICS]
        assert cooking.top.name == "cooking"


class TestRefusalsChangeNothing:
    @pytest.mark.parametrize(
        ("call", "error"),
        [
            (lambda s: s.add_class(1, "SPORTS", "again"), DuplicateClassError),
            (lambda s: s.add_class(1, "x" * 51), InvalidClassError),
            (lambda s: s.add_class(1, "qxzvvb", "wqqxjk"), UnknownWordsError),
            (lambda s: s.edit_class(1, "nope", description="x"), ClassNotFoundError),
            (lambda s: s.edit_class(1, "sports", new_name="Music"), DuplicateClassError),
            (
                lambda s: s.edit_class(1, "sports", new_name="qxzvvb", description="wqqxjk"),
                UnknownWordsError,
            ),
            (lambda s: s.edit_class(1, "sports", new_name="a\nb"), InvalidClassError),
            (lambda s: s.remove_class(1, "nope"), ClassNotFoundError),
            (lambda s: s.set_threshold(1, 1.5), zsl.InvalidThresholdError),
            (lambda s: s.set_threshold(1, float("nan")), zsl.InvalidThresholdError),
        ],
    )
    async def test_refused_write(
        self, glove: WordVectors, store_url: str, call: Any, error: type[ZslError]
    ) -> None:
        service = await _service(glove, store_url)
        before = await _state(service, store_url)

        with pytest.raises(error):
            await call(service)
        after = await _state(service, store_url)
        await service.close()

        assert after == before

    async def test_class_limit(self, glove: WordVectors, db_url: str) -> None:
        service = await _service(glove, db_url, limits=Limits(classes_per_guild=len(TOPICS)))
        before = await _state(service, db_url)

        with pytest.raises(ClassLimitError, match=f"{len(TOPICS)} classes"):
            await service.add_class(1, "weather", "rain snow")
        after = await _state(service, db_url)
        await service.close()

        assert after == before

    async def test_store_failure_keeps_the_old_snapshot(
        self, glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        service = await _service(glove, db_url)
        before = await _state(service, db_url)

        async def broken(*args: object) -> None:
            raise zsl.StoreUnavailableError("The class registry cannot be written right now.")

        monkeypatch.setattr(service.store, "insert_class", broken)
        with pytest.raises(zsl.StoreUnavailableError):
            await service.add_class(1, "weather", "rain snow")
        monkeypatch.undo()
        after = await _state(service, db_url)
        await service.close()

        assert after == before

    @pytest.mark.parametrize(
        ("text", "top_k", "message"),
        [
            ("", 3, "no text"),
            ("   ", 3, "no text"),
            ("x" * 2001, 3, "limit is 2000"),
            ("goal", 0, "between 1 and 25"),
            ("goal", 26, "between 1 and 25"),
        ],
    )
    async def test_bad_classify_input(
        self, glove: WordVectors, db_url: str, text: str, top_k: int, message: str
    ) -> None:
        async with await _service(glove, db_url) as service:
            with pytest.raises(InvalidTextError, match=message):
                await service.classify(1, text, top_k=top_k)

    @pytest.mark.parametrize(("text", "length"), [("", 0), ("   ", 0), ("x" * 2001, 2001)])
    async def test_a_refused_text_carries_its_length(
        self, glove: WordVectors, db_url: str, text: str, length: int
    ) -> None:
        async with await _service(glove, db_url) as service:
            with pytest.raises(InvalidTextError) as refused:
                await service.classify(1, text)

        assert refused.value.length == length
        assert refused.value.limit == (None if length == 0 else 2000)


class TestEditing:
    async def test_rename_and_redescribe(self, glove: WordVectors, db_url: str) -> None:
        async with await _service(glove, db_url) as service:
            await service.edit_class(1, "COOKING", new_name="food")
            edited = await service.edit_class(1, "food", description="pizza pasta restaurant")
            renamed_case = await service.edit_class(1, "music", new_name="Music")
            result = await service.classify(1, "best pizza in town")
            names = [d.name for d in await service.classes(1)]

        assert edited == ClassDefinition("food", "pizza pasta restaurant")
        assert renamed_case.name == "Music"
        assert names == ["sports", "Music", "politics", "food"]
        assert result.top.name == "food"

    async def test_remove(self, glove: WordVectors, db_url: str) -> None:
        async with await _service(glove, db_url) as service:
            removed = await service.remove_class(1, "Sports")
            result = await service.classify(1, "What a goal!", top_k=25)

        assert removed == ClassDefinition("sports", "football match team goal")
        assert "sports" not in [p.name for p in result.predictions]


class TestConcurrency:
    async def test_concurrent_writers_in_one_guild_lose_nothing(
        self, glove: WordVectors, store_url: str
    ) -> None:
        db_url = store_url
        words = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
        async with await ZeroShotService.open(glove, db_url) as service:
            results = await asyncio.gather(
                *(service.add_class(1, w, f"{w} colour") for w in words),
                *(service.add_class(1, w.upper(), "duplicate") for w in words),
                return_exceptions=True,
            )
            names = sorted(d.name.lower() for d in await service.classes(1))
            _, stored = await _state(service, db_url)

        assert sum(isinstance(r, DuplicateClassError) for r in results) == len(words)
        assert not [
            r
            for r in results
            if isinstance(r, Exception) and not isinstance(r, DuplicateClassError)
        ]
        assert names == sorted(words)
        assert sorted(c.name.lower() for c in stored[1].classes) == sorted(words)

    async def test_readers_never_see_a_half_built_set(
        self, glove: WordVectors, db_url: str
    ) -> None:
        async with await _service(glove, db_url) as service:
            seen: list[int] = []

            async def write() -> None:
                for i in range(10):
                    await service.add_class(1, f"extra {i}", "weather rain")
                    # The readers' turn: a write can be quicker than a read (a class is
                    # embedded in about a millisecond), and they must see it between two.
                    await asyncio.sleep(0.005)

            writing = asyncio.create_task(write())

            async def read() -> None:
                # Reading for as long as the writes go on, however fast either is.
                while not writing.done():
                    result = await service.classify(1, "the weather today", top_k=25)
                    names = [p.name for p in result.predictions]
                    assert len(names) == len(set(names))
                    seen.append(len(names))

            await asyncio.gather(
                read(),
                read(),
                writing,
                *(service.add_class(g, "sports", "football") for g in range(2, 30)),
            )
            guilds = await service.guild_ids()

        assert set(seen) <= set(range(len(TOPICS), len(TOPICS) + 11))
        assert max(seen) > min(seen)
        assert len(guilds) == 29

    async def test_vector_maths_runs_off_the_event_loop_in_one_thread_that_ends_on_close(
        self, glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with await _service(glove, db_url):
            pass
        threads: list[tuple[str, threading.Thread]] = []

        def spy(name: str) -> Callable[..., Any]:
            real = getattr(zsl.service, name)

            def called(*args: Any) -> Any:
                threads.append((name, threading.current_thread()))
                return real(*args)

            return called

        for name in ("rank_encoded", "_build_guilds"):
            monkeypatch.setattr(zsl.service, name, spy(name))
        async with await ZeroShotService.open(glove, db_url) as service:
            await service.classify(1, "goal")  # the guild is read and built first
            await service.classify(1, "the election")

        assert [name for name, _ in threads] == ["_build_guilds", "rank_encoded", "rank_encoded"]
        assert threading.main_thread() not in {thread for _, thread in threads}
        # One worker thread builds guilds and answers every batch.
        assert len({thread for _, thread in threads}) == 1
        threads[0][1].join(timeout=5)
        assert not threads[0][1].is_alive()

    async def test_a_long_build_runs_beside_the_worker_so_texts_do_not_wait_for_it(
        self, glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        example = " ".join(["the team scored a late goal in the match"] * 45)
        async with await _service(glove, db_url) as writer:
            for i in range(11):  # guild 1: more to encode than the worker is lent for
                await writer.add_example(1, "sports", example + " goal" * i)  # distinct ones
            await writer.add_class(2, "weather", "rain snow storm")
        assert 11 * len(example) > zsl.service.SHARED_BUILD_CHARACTERS
        builds: dict[int, threading.Thread] = {}
        scoring: list[threading.Thread] = []
        real_build, real_rank = zsl.service._build_guilds, zsl.service.rank_encoded

        def build(encoder: Any, jobs: Any, *rest: Any) -> Any:
            builds.update((guild_id, threading.current_thread()) for guild_id, *_ in jobs)
            return real_build(encoder, jobs, *rest)

        def rank(*args: Any) -> Any:
            scoring.append(threading.current_thread())
            return real_rank(*args)

        monkeypatch.setattr(zsl.service, "_build_guilds", build)
        monkeypatch.setattr(zsl.service, "rank_encoded", rank)
        async with await ZeroShotService.open(glove, db_url) as service:
            light = await service.classify(2, "heavy snow tonight")
            heavy = await service.classify(1, "what a goal")

        assert (light.top.name, heavy.top.name) == ("weather", "sports")
        assert len(set(scoring)) == 1
        assert builds[2] is scoring[0]  # a short build shares the worker
        assert builds[1] is not scoring[0]  # a long one gets a thread of its own
        assert threading.main_thread() not in builds.values()

    async def test_a_failed_batch_reaches_its_callers_and_the_next_batch_is_answered(
        self, glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real_batch = zsl.service._classify_batch
        failures = [RuntimeError("the scoring thread broke")]

        def once_broken(*args: Any) -> Any:
            if failures:
                raise failures.pop()
            return real_batch(*args)

        monkeypatch.setattr(zsl.service, "_classify_batch", once_broken)
        service = await _service(glove, db_url)
        try:  # time limits: a scoring thread that died would leave every caller waiting
            with pytest.raises(RuntimeError, match="the scoring thread broke"):
                await asyncio.wait_for(service.classify(1, "goal"), 10)
            result = await asyncio.wait_for(service.classify(1, "What a goal!"), 10)
        finally:
            await asyncio.wait_for(service.close(), 10)
        assert result.top.name == "sports"


class TestBatching:
    """Concurrent classify calls share worker-thread calls; each still gets its own answer."""

    TEXTS = (
        "What a goal in the last minute!",
        "their new album is out and the tour starts in May",
        "the minister resigned after the vote",
        "preheat the oven and bake for 20 minutes",
        "zorblaxx quuxify",  # no known word
    )

    async def _serve_many_guilds(self, glove: WordVectors, db_url: str) -> ZeroShotService:
        service = await _service(glove, db_url)
        for guild in (2, 3):
            for name, description in reversed(TOPICS[guild - 2 :]):
                await service.add_class(guild, name, description)
        return service

    @staticmethod
    async def _answer(service: ZeroShotService, guild: int, text: str, top_k: int) -> Any:
        try:
            result = await service.classify(guild, text, top_k)
        except ZslError as exc:
            return type(exc), str(exc)
        # A batch sums in another order than a single text: scores agree to float precision.
        return (
            tuple((p.name, round(p.score, 4), round(p.confidence, 4)) for p in result.predictions),
            result.abstained,
            result.evidence,
            result.unknown_words,
        )

    async def test_concurrent_calls_get_what_each_would_get_alone(
        self, glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls = [(1 + i % 3, self.TEXTS[i % len(self.TEXTS)], 1 + i % 4) for i in range(300)]
        batches: list[int] = []
        real_batch = zsl.service._classify_batch

        def spy(encoder: Any, batch: list[Any], scoring: Any) -> Any:
            batches.append(len(batch))
            return real_batch(encoder, batch, scoring)

        monkeypatch.setattr(zsl.service, "_classify_batch", spy)
        async with await self._serve_many_guilds(glove, db_url) as service:
            alone = [await self._answer(service, *call) for call in calls]
            batches.clear()

            together = await asyncio.gather(*(self._answer(service, *call) for call in calls))

        assert together == alone
        assert sum(batches) == len(calls)
        assert len(batches) < len(calls) / 10
        assert max(batches) <= zsl.service.CLASSIFY_BATCH
        assert alone[4][0] is UnknownWordsError
        assert "zorblaxx" in alone[4][1]
        assert alone[0][0][0][0] == "sports"
        assert len(alone[3][0]) == 4

    async def test_a_text_that_breaks_the_ranking_fails_alone(
        self, glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real_rank_encoded, real_rank = zsl.service.rank_encoded, zsl.service.rank

        def rank_encoded(texts: Any, *args: Any) -> Any:
            if any("poison" in text.words for text in texts):
                raise RuntimeError("a bug")
            return real_rank_encoded(texts, *args)

        def rank(encoder: Any, classes: Any, text: str, *args: Any) -> Any:
            if "poison" in text:
                raise RuntimeError("a bug")
            return real_rank(encoder, classes, text, *args)

        monkeypatch.setattr(zsl.service, "rank_encoded", rank_encoded)
        monkeypatch.setattr(zsl.service, "rank", rank)
        async with await _service(glove, db_url) as service:
            results = await asyncio.gather(
                *(service.classify(1, t) for t in ["a late goal", "poison", "a new album"]),
                return_exceptions=True,
            )

        assert [r.top.name for r in (results[0], results[2])] == ["sports", "music"]  # type: ignore[union-attr]
        assert isinstance(results[1], RuntimeError)

    async def test_a_caller_that_gives_up_does_not_disturb_the_others(
        self, glove: WordVectors, db_url: str
    ) -> None:
        async with await _service(glove, db_url) as service:
            calls = [asyncio.ensure_future(service.classify(1, "a late goal")) for _ in range(100)]
            await asyncio.sleep(0)
            for call in calls[::2]:
                call.cancel()
            results = await asyncio.gather(*calls, return_exceptions=True)

        assert all(isinstance(r, asyncio.CancelledError) for r in results[::2])
        assert {r.top.name for r in results[1::2]} == {"sports"}  # type: ignore[union-attr]

    async def test_an_empty_guild_is_refused_without_a_worker(
        self, glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(zsl.service, "_classify_batch", None)
        async with await ZeroShotService.open(glove, db_url) as service:
            with pytest.raises(NoClassesError):
                await service.classify(7, "a late goal")


async def test_store_folder_is_created(glove: WordVectors, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/deep/er/zsl.sqlite3"

    async with await ZeroShotService.open(glove, url) as service:
        await service.add_class(1, "sports", "football")

    assert (tmp_path / "deep" / "er" / "zsl.sqlite3").exists()


class TestLearningFromExamples:
    async def test_an_example_moves_the_class_and_survives_reopening(
        self, glove: WordVectors, store_url: str
    ) -> None:
        text = "the striker was booked for diving in the box"
        async with await _service(glove, store_url) as service:
            before = await service.classify(1, text, top_k=25)
            await service.add_example(1, "sports", "the referee showed him a yellow card")
            await service.add_example(1, "sports", "the referee showed him a yellow card")
            after = await service.classify(1, text, top_k=25)
            await service.edit_class(1, "sports", new_name="football")
            kept = (await service.classes(1))[0]

        async with await ZeroShotService.open(glove, store_url) as reopened:
            reloaded = (await reopened.classes(1))[0]

        def score(result: Any, name: str) -> float:
            return next(p.score for p in result.predictions if p.name == name)

        assert score(after, "sports") > score(before, "sports")
        assert kept.examples == ("the referee showed him a yellow card",)
        assert reloaded == kept

    async def test_remove_example(self, glove: WordVectors, db_url: str) -> None:
        async with await _service(glove, db_url) as service:
            await service.add_example(1, "music", "first")
            await service.add_example(1, "music", "second one")

            removed = await service.remove_example(1, "music", 1)
            with pytest.raises(zsl.ExampleNotFoundError, match="no example number 5") as missing:
                await service.remove_example(1, "music", 5)
            examples = (await service.classes(1))[1].examples

        assert removed == "first"
        assert examples == ("second one",)
        assert (missing.value.name, missing.value.number, missing.value.count) == ("music", 5, 1)

    @pytest.mark.parametrize(
        ("call", "error"),
        [
            (lambda s: s.add_example(1, "nope", "text"), ClassNotFoundError),
            (lambda s: s.add_example(1, "sports", "qxzvvb wqqxjk"), UnknownWordsError),
            (lambda s: s.add_example(1, "sports", ""), InvalidTextError),
            (lambda s: s.add_example(1, "sports", "third example here"), zsl.ExampleLimitError),
        ],
    )
    async def test_refused_examples_change_nothing(
        self, glove: WordVectors, db_url: str, call: Any, error: type[ZslError]
    ) -> None:
        service = await _service(glove, db_url, limits=Limits(examples_per_class=2))
        await service.add_example(1, "sports", "one goal")
        await service.add_example(1, "sports", "two goals")
        before = await _state(service, db_url)

        with pytest.raises(error):
            await call(service)
        after = await _state(service, db_url)
        await service.close()

        assert after == before

    async def test_votes_are_kept_for_review(self, glove: WordVectors, db_url: str) -> None:
        async with await _service(glove, db_url) as service:
            await service.vote(1, 42, "some text", "sports", "MUSIC")
            await service.vote(1, 43, "other text", "sports", None)
            with pytest.raises(ClassNotFoundError):
                await service.vote(1, 44, "x", "sports", "no such class")
            votes = await service.votes(1)
            await service.dismiss_vote(1, votes[0].id)
            with pytest.raises(zsl.VoteNotFoundError, match="no vote number") as missing:
                await service.dismiss_vote(2, votes[1].id)
            left = await service.votes(1)

        assert missing.value.number == votes[1].id

        assert [(v.user_id, v.suggested) for v in votes] == [(43, None), (42, "music")]
        assert [v.user_id for v in left] == [42]


async def test_a_full_reload_never_undoes_a_newer_write(
    glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After a lost PostgreSQL connection the service compares versions without the guild
    # locks; a write that lands while that read is in flight must survive it.
    async with await _service(glove, db_url) as service:
        read_before_the_write = asyncio.Event()
        write_done = asyncio.Event()
        versions = service.store.versions

        async def slow_versions(guild_ids: Any) -> Any:
            stale = await versions(guild_ids)
            read_before_the_write.set()
            await write_done.wait()
            return stale

        monkeypatch.setattr(service.store, "versions", slow_versions)
        reloading = asyncio.create_task(service.reload())
        await read_before_the_write.wait()
        await service.add_class(1, "weather", "rain snow sunny forecast")
        write_done.set()
        await reloading
        names = [d.name for d in await service.classes(1)]

    assert names == [n for n, _ in TOPICS] + ["weather"]


async def test_a_failed_first_read_nobody_waits_for_is_not_reported_to_the_loop(
    glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A member's first use of a guild during an outage: the caller gives up before the store
    # does. The failure is theirs; the loop must not log "exception was never retrieved".
    async with await _service(glove, db_url):
        pass
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        async with await ZeroShotService.open(glove, db_url) as service:

            async def failing_read(guild_ids: Any) -> Any:
                await asyncio.sleep(0.2)
                raise zsl.StoreUnavailableError("the database did not answer in time")

            monkeypatch.setattr(service.store, "load_guilds", failing_read)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(service.classify(1, "What a goal!"), 0.05)
            await asyncio.sleep(0.4)  # the read fails meanwhile
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)

    assert [c.get("message") for c in reported] == []


async def test_a_write_whose_outcome_is_unknown_is_read_back(
    glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store deadline can pass after COMMIT was sent: the caller hears "unavailable", but the
    # class is there. The process never hears its own notifications, so it re-reads the guild.
    async with await _service(glove, db_url) as service:
        insert_class = service.store.insert_class

        async def landed_then_timed_out(*args: Any) -> None:
            await insert_class(*args)
            raise zsl.StoreUnavailableError("the database did not answer in time")

        monkeypatch.setattr(service.store, "insert_class", landed_then_timed_out)
        with pytest.raises(zsl.StoreUnavailableError):
            await service.add_class(1, "weather", "rain snow sunny forecast")
        for _ in range(100):
            if "weather" in [d.name for d in await service.classes(1)]:
                break
            await asyncio.sleep(0.05)
        result = await service.classify(1, "heavy rain and snow tomorrow")

    assert [d.name for d in await service.classes(1)] == [n for n, _ in TOPICS] + ["weather"]
    assert result.top.name == "weather"


class TestLazyBuilding:
    """A registry opens in the time it takes to read it; each guild is embedded on first use."""

    @staticmethod
    def _count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
        built: list[int] = []
        real_build = zsl.service._build_guilds

        def spy(encoder: Any, jobs: list[Any], *rest: Any) -> Any:
            built.extend(guild_id for guild_id, _, _ in jobs)
            return real_build(encoder, jobs, *rest)

        monkeypatch.setattr(zsl.service, "_build_guilds", spy)
        return built

    async def test_opening_embeds_nothing_and_first_use_embeds_that_guild_once(
        self, glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with await ZeroShotService.open(glove, db_url) as service:
            for guild in (1, 2, 3):
                for name, description in TOPICS:
                    await service.add_class(guild, name, description)
            await service.set_threshold(3, 0.25)
        built = self._count_builds(monkeypatch)

        async with await ZeroShotService.open(glove, db_url) as service:
            after_open = list(built)
            listed = await service.classes(2)
            found = await service.get_class(2, "MUSIC")
            threshold = await service.threshold(3)
            guilds = sorted(await service.guild_ids())
            after_reads = list(built)
            results = await asyncio.gather(
                *(service.classify(2, "What a goal in the last minute!") for _ in range(20))
            )
            await service.classify(2, "a new album")
            after_classify = list(built)
            await service.add_class(3, "weather", "rain snow sunny forecast")

        # Reading a guild's classes is its first use (the cache holds built guilds only).
        assert after_open == []
        assert after_reads == [2, 3]
        assert [d.name for d in listed] == [n for n, _ in TOPICS]
        assert found.description == "song album band concert"
        assert threshold == 0.25
        assert guilds == [1, 2, 3]
        assert {r.top.name for r in results} == {"sports"}
        assert after_classify == [2, 3]
        assert built == [2, 3]

    async def test_a_full_reload_embeds_again_only_the_guilds_that_changed(
        self, glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # After a lost PostgreSQL connection every guild may have changed meanwhile; the
        # service compares and drops only the changed ones, so first uses stay rare.
        async with await ZeroShotService.open(glove, db_url) as service:
            for guild in (1, 2, 3):
                for name, description in TOPICS:
                    await service.add_class(guild, name, description)
            other = await open_store(db_url)  # another process, while we were disconnected
            await other.insert_class(2, ClassDefinition("weather", "rain snow forecast"), 100)
            await other.set_threshold(3, 0.3)
            await other.close()
            built = self._count_builds(monkeypatch)

            await service.reload()
            results = [await service.classify(g, "heavy rain and snow tomorrow") for g in (1, 2, 3)]

        assert built == [2]
        assert [r.top.name for r in results][1] == "weather"
        assert [r.threshold for r in results] == [zsl.DEFAULT_THRESHOLD] * 2 + [0.3]

    async def test_a_changed_guild_embeds_again_only_its_changed_classes(
        self, glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        embedded: list[str] = []
        real_embed = zsl.service.embed_classes

        def spy(encoder: Any, definitions: list[ClassDefinition], *rest: Any) -> Any:
            embedded.extend(definition.name for definition in definitions)
            return real_embed(encoder, definitions, *rest)

        async with await _service(glove, db_url) as service:
            await service.classify(1, "What a goal!")
            other = await open_store(db_url)
            await other.replace_class(1, "music", ClassDefinition("music", "song album guitar"))
            await other.close()
            monkeypatch.setattr(zsl.service, "embed_classes", spy)

            await service.reload(1)  # what a notification from the other process does
            await service.reload(1)  # a second notice of the same change changes nothing
            result = await service.classify(1, "a new guitar album")

        assert embedded == ["music"]
        assert result.top.name == "music"

    async def test_a_full_reload_while_a_guild_is_being_embedded_wins(
        self, glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with await _service(glove, db_url):
            pass
        embedding = threading.Event()
        reloaded = threading.Event()
        real_build = zsl.service._build_guilds

        def slow_build(*args: Any) -> Any:
            embedding.set()
            reloaded.wait(timeout=10)
            return real_build(*args)

        async with await ZeroShotService.open(glove, db_url) as service:
            other = await open_store(db_url)  # another process adds a class meanwhile
            await other.insert_class(1, ClassDefinition("weather", "rain snow forecast"), 100)
            await other.close()
            monkeypatch.setattr(zsl.service, "_build_guilds", slow_build)
            first_use = asyncio.create_task(service.classify(1, "heavy rain and snow tomorrow"))
            await asyncio.to_thread(embedding.wait, 10)
            await service.reload()
            reloaded.set()
            result = await first_use

        assert result.top.name == "weather"


@pytest.mark.asyncio
async def test_an_edited_class_keeps_its_emoji(glove: WordVectors, db_url: str) -> None:
    async with await _service(glove, db_url) as service:
        await service.set_emoji(1, "sports", "⚽")
        await service.edit_class(1, "sports", description="football goal referee")
        in_memory = await service.get_class(1, "sports")
        memory, stored = await _state(service, db_url)

    assert in_memory.emoji == "⚽"
    assert in_memory.description == "football goal referee"
    assert memory[1] == stored[1].classes  # the snapshot is what the registry holds


@pytest.mark.asyncio
async def test_an_export_file_is_parsed_off_the_event_loop(
    glove: WordVectors, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real_parse = zsl.service.parse_class_set

    def spy(text: str) -> Any:
        threads.append(threading.current_thread())
        return real_parse(text)

    monkeypatch.setattr(zsl.service, "parse_class_set", spy)
    async with await ZeroShotService.open(glove, db_url) as service:
        class_set = await service.read_class_set('{"threshold": null, "classes": []}')
        with pytest.raises(ClassFileError):
            await service.read_class_set("{not json")

    assert class_set.classes == ()
    assert len(threads) == 2
    assert threading.main_thread() not in threads
