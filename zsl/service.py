"""ZeroShotService: the async facade over the encoder, the snapshots and the store.

Reads take the guild's current :class:`ClassSet` reference without a lock. Writes hold the
guild's lock, build the new snapshot in a worker thread, persist it, and only then swap the
reference, so a failed write leaves the old snapshot (and the database) as they were. This is
the only module that decides what runs in threads: classifying and building guilds share one
worker thread (a long build gets a thread of its own), the rarer writes' embedding goes to
``asyncio.to_thread``, and the store runs its own I/O off the loop.

Guilds are read lazily: opening reads none, a guild is read (batched with the other guilds
waiting to be read) and embedded on its first use, and built guilds live in a cache bounded
in bytes, least recently used out first. A process given ``owns`` never reads another's guild.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import logging
import math
import queue
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, ParamSpec, TypeVar

from threadpoolctl import threadpool_limits

from zsl.classes import (
    CalibrationCache,
    ClassSet,
    ClassVector,
    Limits,
    embed_class,
    embed_classes,
    validate_class,
)
from zsl.classifier import DEFAULT_THRESHOLD, Classification, ScoringConfig, rank, rank_encoded
from zsl.embedding import Encoded, Encoder, EncoderConfig
from zsl.errors import (
    ClassFileError,
    DuplicateClassError,
    ExampleLimitError,
    ExampleNotFoundError,
    GuildNotServedError,
    InvalidTextError,
    InvalidThresholdError,
    NoClassesError,
    StoreUnavailableError,
    UnknownWordsError,
    VoteNotFoundError,
    ZslError,
    shown_input,
)
from zsl.records import (
    AUTOTAG_MODES,
    WATCH_ACTIONS,
    Autotag,
    ClassDefinition,
    ClassSetFile,
    GuildRecord,
    Vote,
    Watch,
    check_emoji,
    check_not_look_alike,
    has_broken_characters,
    name_skeleton,
    parse_class_set,
)
from zsl.store import DEFAULT_DATABASE_URL, DEFAULT_STORE_TIMEOUT, Store, open_store
from zsl.vectors import WordVectors

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

MAX_TOP_K = 25
DEFAULT_GUILD_CACHE_BYTES = 256 * 1024 * 1024
"""Built guilds kept in memory: about 8,000 guilds of 20 classes with a 50-dimension model."""
DEFAULT_CALIBRATION_CACHE_BYTES = 64 * 1024 * 1024
"""Calibrations of classes embedded before: about 260,000 classes (13,000 guilds of 20),
whatever the model's dimension. An evicted guild whose calibrations are still here is rebuilt
from its stored definitions at a twentieth of the cost of embedding it anew or less."""
GUILD_ENTRY_BYTES = 1024
"""What one cached guild costs besides its arrays (its definitions, the cache's entry): a flat
estimate, so that even guilds with no classes count against the budget."""
BUILD_BATCH = 64
"""At most this many class definitions embedded in one build call (at least one guild's):
the guilds waiting to be built share the call's fixed costs, while the callers a call answers
at once, and the texts waiting behind it in the worker, stay few enough to keep the event
loop's lag low (half the calls missing, 10,000 active guilds, two shard processes: 64 gave
3,816-3,967 texts/s and a lag p99 of 3-3.5 ms, 256 4,247-4,304 texts/s and 6-7 ms)."""
SHARED_BUILD_CHARACTERS = 20_000
"""A build call whose definitions (names, descriptions, examples) hold more characters than this
runs in a thread of its own instead of the worker, so that texts never wait long behind it:
encoding takes about 0.7 us a character, so 20,000 hold the worker some 15 ms, while a guild
of 100 classes with 20 examples of 2,000 characters takes 2.8 s even with its calibrations
kept (4.2 million characters)."""
CLASSIFY_BATCH = 64
"""At most this many texts per worker-thread call: large enough to share the fixed costs,
small enough that answering one batch never holds the event loop for long."""


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """The cache of built guilds right now."""

    guilds: int
    bytes: int
    budget: int
    calibrations: int = 0
    """Classes whose calibration is kept (the second tier: for rebuilding evicted guilds)."""
    calibration_bytes: int = 0
    calibration_budget: int = 0
    guilds_read: int = 0
    """Guilds read from the store since the service opened: first uses, rebuilds after an
    eviction, and reloads of changed guilds."""


@dataclass(frozen=True, slots=True)
class _Built:
    """A cached guild: its snapshot and the store version it matches."""

    snapshot: ClassSet
    version: int

    @property
    def nbytes(self) -> int:
        return self.snapshot.nbytes + GUILD_ENTRY_BYTES


@dataclass(frozen=True, slots=True)
class _Request:
    snapshot: ClassSet
    text: str
    top_k: int
    answer: asyncio.Future[Classification]


@dataclass(frozen=True, slots=True)
class _BuildJob:
    guild_id: int
    record: GuildRecord
    previous: ClassSet
    """The guild's snapshot before (its unchanged classes are kept) or ClassSet.EMPTY."""
    answer: asyncio.Future[ClassSet]


_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class _Worker:
    """The one thread that answers classify batches and builds guilds.

    One thread for both, not one each: the work is mostly Python, so a second thread only adds
    hand-offs of the interpreter lock and one more thread wanting a core. Half the calls
    missing, 10,000 active guilds, two shard processes on two cores, side by side: 2,415-2,940
    texts/s with a builder thread of its own, 3,816-3,967 with one worker, loop lag p99 about
    3 ms both ways (``zsl bench --sections scale --scale-processes 2``, run apart: 2,487-3,570
    before, 3,516-4,076 after). A build too long to make texts wait for goes to a thread of
    its own instead (``SHARED_BUILD_CHARACTERS``).

    A hand-off through a queue and ``call_soon_threadsafe`` costs about 27 µs where
    ``asyncio.to_thread`` costs 74 (measured on an empty call): a tenth of what a text costs at
    100 classes, paid by every call when they come one at a time.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """``fn(*args, **kwargs)`` in the worker's thread; its result or exception."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="zsl-worker", daemon=True)
            self._thread.start()
        self._jobs.put((loop, answer, functools.partial(fn, *args, **kwargs)))
        return answer

    def stop(self) -> None:
        """Let the thread end once the jobs given so far are answered."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, answer, call = job
            try:
                outcome: tuple[Any, BaseException | None] = (call(), None)
            except BaseException as exc:  # the caller gets it, as from to_thread
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, answer, *outcome)


def _settle(answer: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if answer.done():  # cancelled meanwhile
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(result)


# glibc's malloc.h
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_HEAP_BLOCKS = 16 * 2**20
"""Blocks up to this size come from the heap; twice as much may stay free at its top."""
GC_YOUNG_OBJECTS = 50_000
"""The garbage collector looks for cycles among new objects once this many more were made
than freed (Python's default: 700)."""


def configure_process() -> None:
    """Set this whole process up for serving; entry points call it once at start, before any
    thread starts.

    - One BLAS thread. Our matrices are small: extra BLAS threads only spin against the worker
      threads and the event loop for the same cores (measured: 10,000 classes 5 ms a text,
      not 25).
    - One malloc heap (glibc's arenas). By default glibc gives each thread that allocates a heap
      of its own and keeps what is freed there for that heap: a guild built in a worker
      thread and dropped by the event loop leaves free memory in several heaps, which the
      cache's budget never sees (10^5 guilds used once, budget 256 MB: 441 MB beside the model
      with a heap per thread, 332 MB with one).
    - Fixed heap thresholds. Building a guild takes temporaries of a few MB. glibc maps such
      blocks afresh, then raises its thresholds as it sees big blocks freed; a process whose
      encoder computed its tables had seen 21 MB ones and kept the temporaries in its heap,
      one that mapped kept tables had not, and gave the memory back after every guild only to
      fault it in again: a cold guild's first use took 26 ms instead of 21. Fixed, the
      thresholds no longer depend on what the process did first.
    - A garbage collection of young objects every ``GC_YOUNG_OBJECTS`` instead of 700. A built
      guild is some 60 objects the collector tracks (its classes and their calibrations): with
      700, rebuilding evicted guilds under load ran a collection every few guilds and a full
      one, which walks every cached guild and stops every thread, every few seconds (0.13-0.2 s
      each with 5,000 guilds): 10% of the run, and the event loop's lag p99 went from 5-6 to
      10-11 ms (`zsl bench --sections scale --scale-processes 2`, 10,000 active). Nothing here
      makes cycles: what a guild holds is freed by reference counting when it is evicted.
    """
    threadpool_limits(1, user_api="blas")
    gc.set_threshold(GC_YOUNG_OBJECTS, *gc.get_threshold()[1:])
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to set
        mallopt = ctypes.CDLL(None).mallopt
        mallopt(_M_ARENA_MAX, 1)
        mallopt(_M_MMAP_THRESHOLD, _HEAP_BLOCKS)
        mallopt(_M_TRIM_THRESHOLD, 2 * _HEAP_BLOCKS)


class ZeroShotService:
    """Per-guild zero-shot classification backed by one shared word-vector model."""

    def __init__(
        self,
        encoder: Encoder,
        store: Store,
        *,
        limits: Limits | None = None,
        scoring: ScoringConfig | None = None,
        owns: Callable[[int], bool] | None = None,
        cache_bytes: int = DEFAULT_GUILD_CACHE_BYTES,
        calibration_bytes: int = DEFAULT_CALIBRATION_CACHE_BYTES,
    ) -> None:
        self.encoder = encoder
        self.store = store
        self.limits = limits or Limits()
        self.scoring = scoring or ScoringConfig()
        self._owns = owns
        self._budget = cache_bytes
        self._built: OrderedDict[int, _Built] = OrderedDict()  # least recently used first
        self._built_bytes = 0
        self._calibrations = CalibrationCache(encoder, calibration_bytes)
        self._to_build: list[_BuildJob] = []
        self._builder: asyncio.Task[None] | None = None
        # A guild's lock and how many tasks hold or wait for it: dropped when none does, so
        # guilds used once leave nothing behind.
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}
        self._to_read: dict[int, asyncio.Future[GuildRecord]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._guilds_read = 0
        self._waiting: list[_Request] = []
        self._drainer: asyncio.Task[None] | None = None
        self._worker = _Worker()
        self._refreshes: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls,
        vectors: WordVectors,
        database_url: str = DEFAULT_DATABASE_URL,
        *,
        limits: Limits | None = None,
        encoder_config: EncoderConfig | None = None,
        scoring: ScoringConfig | None = None,
        store_timeout: float = DEFAULT_STORE_TIMEOUT,
        owns: Callable[[int], bool] | None = None,
        cache_bytes: int = DEFAULT_GUILD_CACHE_BYTES,
        calibration_bytes: int = DEFAULT_CALIBRATION_CACHE_BYTES,
    ) -> ZeroShotService:
        """Open the registry at ``database_url`` (default: SQLite in ``data/zsl.sqlite3``).

        No guild is read here: each is read and embedded on its first use. ``owns(guild_id)``
        says whether this process serves a guild (None: every guild); a guild it does not serve
        is refused and never read. Built guilds take at most about ``cache_bytes`` of memory;
        the calibrations kept to rebuild evicted guilds cheaply, at most ``calibration_bytes``.
        Each store call gives up after ``store_timeout`` seconds with StoreUnavailableError.

        Raises:
            StoreError: the database cannot be opened.
        """
        encoder = await asyncio.to_thread(Encoder, vectors, encoder_config)
        await asyncio.to_thread(name_skeleton, "warm")  # reads Unicode's confusables once
        store = await open_store(database_url, call_timeout=store_timeout)
        service = cls(
            encoder,
            store,
            limits=limits,
            scoring=scoring,
            owns=owns,
            cache_bytes=cache_bytes,
            calibration_bytes=calibration_bytes,
        )
        try:
            # Other processes sharing the registry announce their writes; reload what changed.
            await store.subscribe(service.reload, service.reload)
        except BaseException:
            await store.close()
            raise
        return service

    async def close(self) -> None:
        """Finish the classifications under way and close the store; the service is done."""
        if self._drainer is not None:
            await asyncio.wait([self._drainer])
        self._worker.stop()
        for refresh in self._refreshes:
            refresh.cancel()
        await self.store.close()

    async def __aenter__(self) -> ZeroShotService:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- reads ----------------------------------------------------------------------------------

    async def classes(self, guild_id: int) -> tuple[ClassDefinition, ...]:
        """The guild's classes in creation order (read and built on its first use).

        Raises:
            GuildNotServedError: the guild belongs to another process.
            StoreUnavailableError: its first read did not answer in time.
        """
        return (await self._snapshot(guild_id)).definitions

    async def get_class(self, guild_id: int, name: str) -> ClassDefinition:
        """The class called ``name`` (ignoring case and spacing). Raises ClassNotFoundError."""
        return (await self._snapshot(guild_id)).get(name)

    async def threshold(self, guild_id: int) -> float:
        """The guild's abstain threshold (its own setting or the default)."""
        own = (await self._snapshot(guild_id)).threshold
        return DEFAULT_THRESHOLD if own is None else own

    async def guild_ids(self) -> tuple[int, ...]:
        """The guilds this process serves that have classes or settings (a store read)."""
        return tuple(g for g in await self.store.guild_ids() if self.serves(g))

    def serves(self, guild_id: int) -> bool:
        """Whether this process serves the guild (its shards), so may read it."""
        return self._owns is None or self._owns(guild_id)

    def cache_info(self) -> CacheInfo:
        """How many built guilds are in memory, their bytes, and the budget; the same for the
        calibrations kept to rebuild evicted guilds; how many guilds were read so far."""
        calibrations = self._calibrations
        return CacheInfo(
            len(self._built),
            self._built_bytes,
            self._budget,
            len(calibrations),
            calibrations.nbytes,
            calibrations.budget,
            self._guilds_read,
        )

    async def meta(self, key: str) -> str | None:
        """A value kept for the caller across restarts (e.g. a command-sync hash), or None.

        Raises:
            StoreUnavailableError: the store did not answer in time.
        """
        return await self.store.get_meta(key)

    async def set_meta(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key`` across restarts.

        Raises:
            StoreUnavailableError: the store did not answer in time.
        """
        await self.store.set_meta(key, value)

    async def classify(self, guild_id: int, text: str, top_k: int = 3) -> Classification:
        """Rank the guild's classes for ``text``.

        Raises:
            InvalidTextError: the text is empty or too long, or ``top_k`` is out of range.
            NoClassesError: the guild has no classes.
            UnknownWordsError: no word of the text is known to the model.
        """
        self._check_text(text)
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidTextError(f"Ask for between 1 and {MAX_TOP_K} classes, not {top_k}.")
        # The request holds its snapshot: evicting the guild meanwhile cannot break it.
        snapshot = await self._snapshot(guild_id)
        if not len(snapshot):  # none, or only classes this model knows no word of
            raise NoClassesError(tuple(d.name for d in snapshot.dormant))
        request = _Request(snapshot, text, top_k, asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await request.answer

    async def _drain(self) -> None:
        """Classify the waiting texts in batches, one worker thread at a time.

        Under load, hundreds of calls wait at once: one hand-off to a thread and one set of
        array operations per batch cost far less than one per text, and a single worker leaves
        the event loop the interpreter between batches.
        """
        try:
            while self._waiting:
                batch = self._waiting[:CLASSIFY_BATCH]
                del self._waiting[:CLASSIFY_BATCH]
                try:
                    answers = await self._worker.run(
                        _classify_batch, self.encoder, batch, self.scoring
                    )
                except Exception as exc:  # the thread could not even start: tell every caller
                    answers = [exc] * len(batch)
                for request, answer in zip(batch, answers, strict=True):
                    if request.answer.done():  # the caller gave up waiting
                        continue
                    if isinstance(answer, BaseException):
                        request.answer.set_exception(answer)
                    else:
                        request.answer.set_result(answer)
        finally:
            self._drainer = None

    # -- writes ---------------------------------------------------------------------------------

    async def add_class(self, guild_id: int, name: str, description: str = "") -> ClassDefinition:
        """Add a class; durable when this returns.

        Raises:
            InvalidClassError, DuplicateClassError, ClassLimitError, UnknownWordsError,
            StoreError: nothing was changed.
        """
        definition = validate_class(name, description, self.limits)
        async with self._lock(guild_id):
            built = await self._current(guild_id)
            current = built.snapshot
            current.check_can_add(definition, self.limits)
            updated = await self._run(_add, self.encoder, current, definition, self._calibrations)
            await self._write(
                guild_id,
                self.store.insert_class(guild_id, definition, self.limits.classes_per_guild),
            )
            self._swap(guild_id, updated, built)
        log.info("guild %d: added class %r", guild_id, definition.name)
        return definition

    async def edit_class(
        self,
        guild_id: int,
        name: str,
        *,
        new_name: str | None = None,
        description: str | None = None,
    ) -> ClassDefinition:
        """Rename a class and/or change its description; unchanged parts stay as they were.

        Raises:
            ClassNotFoundError, InvalidClassError, DuplicateClassError, UnknownWordsError,
            StoreError: nothing was changed.
        """
        async with self._lock(guild_id):
            built = await self._current(guild_id)
            current = built.snapshot
            old = current.get(name)
            definition = replace(
                validate_class(
                    old.name if new_name is None else new_name,
                    old.description if description is None else description,
                    self.limits,
                ),
                examples=old.examples,
                emoji=old.emoji,  # the registry keeps it: so must the snapshot
            )
            other = current.find(definition.name)
            if other is not None and other != current.find(old.name):
                raise DuplicateClassError(definition.name)
            if definition.key != old.key:  # a look-alike of its own old name is fine
                others = (d.name for d in current.definitions if d.key != old.key)
                check_not_look_alike(definition.name, others)
            updated = await self._run(
                _replace, self.encoder, current, old.name, definition, self._calibrations
            )
            await self._write(guild_id, self.store.replace_class(guild_id, old.name, definition))
            self._swap(guild_id, updated, built)
        log.info("guild %d: edited class %r -> %r", guild_id, old.name, definition.name)
        return definition

    async def remove_class(self, guild_id: int, name: str) -> ClassDefinition:
        """Remove a class.

        Raises:
            ClassNotFoundError, StoreError: nothing was changed.
        """
        async with self._lock(guild_id):
            built = await self._current(guild_id)
            removed = built.snapshot.get(name)
            updated = built.snapshot.removed(name)
            await self._write(guild_id, self.store.delete_class(guild_id, removed.name))
            self._swap(guild_id, updated, built)
        log.info("guild %d: removed class %r", guild_id, removed.name)
        return removed

    async def add_example(self, guild_id: int, class_name: str, text: str) -> ClassDefinition:
        """Teach a class: ``text`` belongs to it. The class moves towards its examples.

        Raises:
            ClassNotFoundError, InvalidTextError, UnknownWordsError, ExampleLimitError,
            StoreError: nothing was changed.
        """
        self._check_text(text)
        text = " ".join(text.split())
        await self._run(self.encoder.encode, text, what="example")  # refuse unknown words now
        async with self._lock(guild_id):
            built = await self._current(guild_id)
            current = built.snapshot
            old = current.get(class_name)
            if text in old.examples:
                return old
            if len(old.examples) >= self.limits.examples_per_class:
                raise ExampleLimitError(old.name, self.limits.examples_per_class)
            definition = replace(old, examples=(*old.examples, text))
            updated = await self._run(
                _replace, self.encoder, current, old.name, definition, self._calibrations
            )
            await self._write(
                guild_id,
                self.store.add_example(guild_id, old.name, text, self.limits.examples_per_class),
            )
            self._swap(guild_id, updated, built)
        log.info("guild %d: class %r learned an example", guild_id, old.name)
        return definition

    async def remove_example(self, guild_id: int, class_name: str, number: int) -> str:
        """Forget example ``number`` (1 = the oldest) of a class; returns its text.

        Raises:
            ClassNotFoundError, ExampleNotFoundError (no such example), StoreError.
        """
        async with self._lock(guild_id):
            built = await self._current(guild_id)
            current = built.snapshot
            old = current.get(class_name)
            if not 1 <= number <= len(old.examples):
                raise ExampleNotFoundError(old.name, number, len(old.examples))
            text = old.examples[number - 1]
            definition = replace(old, examples=tuple(e for e in old.examples if e != text))
            updated = await self._run(
                _replace, self.encoder, current, old.name, definition, self._calibrations
            )
            await self._write(guild_id, self.store.remove_example(guild_id, old.name, text))
            self._swap(guild_id, updated, built)
        return text

    async def vote(
        self,
        guild_id: int,
        user_id: int,
        text: str,
        predicted: str,
        suggested: str | None,
        result: str | None = None,
    ) -> None:
        """Keep a member's feedback on a result for admins to review (``None`` = it was right).

        ``result`` identifies the result voted on: a member's later vote on the same result
        replaces their earlier one, so one member cannot push the others' votes out.

        Raises:
            InvalidTextError: the text or a class name holds a character no registry can keep.
            ClassNotFoundError: ``suggested`` is not one of the guild's classes.
            StoreError: nothing was kept.
        """
        for part in (text, predicted, suggested or ""):
            self._check_characters(part)
        self._check_served(guild_id)
        if suggested is not None:
            suggested = (await self.get_class(guild_id, suggested)).name
        vote = Vote(user_id, text[: self.limits.text_length], predicted, suggested, result=result)
        await self.store.add_vote(guild_id, vote, self.limits.votes_per_guild)

    async def votes(self, guild_id: int, limit: int = 25) -> list[Vote]:
        """The guild's votes, newest first."""
        self._check_served(guild_id)
        return await self.store.list_votes(guild_id, limit)

    async def dismiss_vote(self, guild_id: int, vote_id: int) -> None:
        """Forget a reviewed vote.

        Raises:
            VoteNotFoundError: the guild has no vote with that number.
        """
        self._check_served(guild_id)
        if not await self.store.delete_vote(guild_id, vote_id):
            raise VoteNotFoundError(vote_id)

    async def set_threshold(self, guild_id: int, threshold: float | None) -> float:
        """Set the guild's abstain threshold in [0, 1]; ``None`` restores the default.

        Raises:
            InvalidThresholdError: the value is outside [0, 1].
            StoreError: nothing was changed.
        """
        if threshold is not None and not (math.isfinite(threshold) and 0 <= threshold <= 1):
            raise InvalidThresholdError(threshold, DEFAULT_THRESHOLD)
        async with self._lock(guild_id):
            built = await self._current(guild_id)
            await self._write(guild_id, self.store.set_threshold(guild_id, threshold))
            self._swap(guild_id, built.snapshot.with_threshold(threshold), built)
        return DEFAULT_THRESHOLD if threshold is None else threshold

    async def reload(self, guild_id: int | None = None) -> None:
        """Catch up with another process's writes: of one guild, or (None) of every guild.

        Only guilds built in memory are concerned: the others are read on their next use
        anyway. A guild is read again, and only what changed is embedded again (the vectors of
        its unchanged classes are kept). Every guild (after a lost connection): their versions
        are compared with the store's, and only those that changed are read again.
        """
        if guild_id is not None:
            # A guild in use holds its lock, maybe to read it for the first time: that read may
            # predate the change, so wait for it and read again.
            if guild_id not in self._built and guild_id not in self._locks:
                return
            async with self._lock(guild_id):
                built = self._built.get(guild_id)
                if built is None:  # evicted meanwhile
                    return
                record = await self._read(guild_id)
                snapshot = built.snapshot
                if _same_classes(snapshot, record):
                    snapshot = snapshot.with_threshold(record.threshold)
                else:
                    snapshot = await self._build(guild_id, record, snapshot)
                self._put(guild_id, _Built(snapshot, record.version))
            return
        versions = await self.store.versions(list(self._built))
        changed = [
            guild
            for guild, version in versions.items()
            if (built := self._built.get(guild)) is not None and built.version != version
        ]
        # Concurrently, so that their reads make one batch.
        await asyncio.gather(*(self.reload(guild) for guild in changed))
        log.info("reconnected: %d of %d guilds in memory had changed", len(changed), len(versions))

    # -- helpers --------------------------------------------------------------------------------

    async def _write(self, guild_id: int, write: Awaitable[None]) -> None:
        """Run a store write of the guild (its lock held).

        A write the store gave up on (StoreUnavailableError) may still have landed, e.g. when
        the deadline passed after COMMIT was sent; this process never hears its own writes'
        notifications, so it reads the guild back once the lock is free. Until then (and if
        the store is still unreachable) the guild stays in memory as it was, so classifying
        goes on through an outage; its version is then behind the store's if the write
        landed, so the comparison after a reconnect reads it again.
        """
        try:
            await write
        except StoreUnavailableError:
            refresh = asyncio.create_task(self._refresh(guild_id))
            self._refreshes.add(refresh)
            refresh.add_done_callback(self._refreshes.discard)
            raise

    async def _refresh(self, guild_id: int) -> None:
        try:
            await self.reload(guild_id)
        except ZslError as exc:  # still unreachable: a reconnect reads what changed
            log.warning("guild %d: could not re-read it after a failed write (%s)", guild_id, exc)

    def _swap(self, guild_id: int, snapshot: ClassSet, before: _Built) -> None:
        """Keep the snapshot of this process's own write, made over ``before``.

        The write bumped the stored version by one. Had another process written in between,
        the store is further on and the versions differ: the next comparison re-reads it,
        and its notification re-reads it sooner.
        """
        self._put(guild_id, _Built(snapshot, before.version + 1))

    def _put(self, guild_id: int, built: _Built) -> None:
        """Keep a built guild, the most recently used; evict the least recently used ones
        beyond the budget (never the one just kept). Requests under way hold their own
        snapshot, so an eviction never breaks one."""
        self._drop(guild_id)
        self._built[guild_id] = built
        self._built_bytes += built.nbytes
        while self._built_bytes > self._budget and len(self._built) > 1:
            oldest = next(iter(self._built))
            self._drop(oldest)

    def _drop(self, guild_id: int) -> None:
        built = self._built.pop(guild_id, None)
        if built is not None:
            self._built_bytes -= built.nbytes

    def _check_served(self, guild_id: int) -> None:
        if not self.serves(guild_id):
            log.warning("guild %d: refused, it belongs to another process's shards", guild_id)
            raise GuildNotServedError(guild_id)

    async def _snapshot(self, guild_id: int) -> ClassSet:
        """The guild's snapshot, read and built first if it is not in memory (only a guild
        this process serves is ever built: ``_current`` checks)."""
        built = self._built.get(guild_id)
        if built is not None:
            self._built.move_to_end(guild_id)
            return built.snapshot
        async with self._lock(guild_id):
            return (await self._current(guild_id)).snapshot

    async def _current(self, guild_id: int) -> _Built:
        """The built guild, read and embedded first if it is not in memory; the caller holds
        the guild's lock."""
        self._check_served(guild_id)
        built = self._built.get(guild_id)
        if built is None:
            record = await self._read(guild_id)
            built = _Built(await self._build(guild_id, record), record.version)
            self._put(guild_id, built)
        else:
            self._built.move_to_end(guild_id)
        return built

    async def _build(
        self, guild_id: int, record: GuildRecord, previous: ClassSet = ClassSet.EMPTY
    ) -> ClassSet:
        """Embed a guild in the worker thread (see :class:`_Worker`; a thread of its own if
        the call is long: ``SHARED_BUILD_CHARACTERS``), in one call with the other guilds
        waiting to be built. A rebuild from kept calibrations is mostly Python
        (tokens, lookups): more threads would only take the interpreter from the event loop
        (measured under load, half the calls missing: a thread per miss gave 735-886 texts/s
        and a loop lag p99 of 56-125 ms, one builder 983-1,067 texts/s and 6-8 ms), while guilds
        built together share each call's fixed costs."""
        answer: asyncio.Future[ClassSet] = asyncio.get_running_loop().create_future()
        self._to_build.append(_BuildJob(guild_id, record, previous, answer))
        if self._builder is None:
            self._builder = asyncio.create_task(self._build_waiting())
        return await answer

    async def _build_waiting(self) -> None:
        try:
            while self._to_build:
                batch = _first_jobs(self._to_build, BUILD_BATCH)
                del self._to_build[: len(batch)]
                jobs = [(job.guild_id, job.record, job.previous) for job in batch]
                run = (
                    self._worker.run if _characters(batch) <= SHARED_BUILD_CHARACTERS else self._run
                )
                try:
                    built = await run(_build_guilds, self.encoder, jobs, self._calibrations)
                except Exception as exc:
                    built = [exc] * len(batch)
                for job, outcome in zip(batch, built, strict=True):
                    if isinstance(outcome, ClassSet):
                        _settle(job.answer, outcome, None)
                    else:
                        _settle(job.answer, None, outcome)
        finally:
            self._builder = None

    async def _read(self, guild_id: int) -> GuildRecord:
        """Read the guild from the store, in one batch with the other guilds waiting to be
        read: under load, a first use of many guilds costs one query per table, not per guild."""
        answer = self._to_read.get(guild_id)
        if answer is None:
            answer = self._to_read[guild_id] = asyncio.get_running_loop().create_future()
            # Every caller may have given up by the time a failed read answers: the failure
            # is theirs to see, not the loop's to report as never retrieved.
            answer.add_done_callback(_retrieve)
            if self._reader is None:
                self._reader = asyncio.create_task(self._read_waiting())
        return await asyncio.shield(answer)  # a caller giving up leaves the others theirs

    async def _read_waiting(self) -> None:
        try:
            while self._to_read:
                batch, self._to_read = self._to_read, {}
                try:
                    records = await self.store.load_guilds(list(batch))
                except Exception as exc:
                    for answer in batch.values():
                        answer.set_exception(exc)
                    continue
                self._guilds_read += len(batch)
                for guild, answer in batch.items():
                    answer.set_result(records[guild])
        finally:
            self._reader = None

    @asynccontextmanager
    async def _lock(self, guild_id: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(guild_id, (asyncio.Lock(), 0))
        self._locks[guild_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[guild_id]
            if users == 1:
                del self._locks[guild_id]
            else:
                self._locks[guild_id] = (lock, users - 1)

    def _check_text(self, text: str) -> None:
        if not text or not text.strip():
            raise InvalidTextError(length=0)
        if len(text) > self.limits.text_length:
            raise InvalidTextError(length=len(text), limit=self.limits.text_length)
        self._check_characters(text)

    @staticmethod
    def _check_characters(text: str) -> None:
        # One rule for every backend: PostgreSQL refuses NUL and SQLite cannot encode a lone
        # surrogate, so neither reaches a store, and classifying follows the same rule.
        if has_broken_characters(text):
            raise InvalidTextError(
                "The text contains a null or broken character that cannot be kept. Remove it "
                "and try again."
            )

    @staticmethod
    async def _run(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- class-set files, class emoji and watched channels (issue 14) -------------------------

    async def class_set(self, guild_id: int) -> ClassSetFile:
        """The guild's classes and its own threshold (None: it uses the default), as an export
        file holds them."""
        snapshot = await self._snapshot(guild_id)
        return ClassSetFile(snapshot.definitions, snapshot.threshold)

    async def read_class_set(self, text: str) -> ClassSetFile:
        """Read an export file (see :func:`zsl.records.parse_class_set`) in a worker thread:
        a file of megabytes is too much JSON to parse on the event loop.

        Raises:
            ClassFileError: the text is not an export file; the sentence says what is wrong.
        """
        return await self._run(parse_class_set, text)

    async def import_classes(
        self, guild_id: int, class_set: ClassSetFile
    ) -> tuple[ClassDefinition, ...]:
        """Add every class of an export file, with its emoji and examples, after the guild's
        classes, and its threshold unless None: all of it or, on any refusal, nothing.

        Each class is checked as add_class, set_emoji and add_example check it, against the
        guild's classes and the file's other classes, before anything is written.

        Raises:
            ClassFileError: a class of the file is refused (``cause`` says why), two share a
                name, or the guild's classes and the file's would be too many (``cause``: a
                ClassLimitError).
            InvalidThresholdError: the threshold is outside [0, 1].
            StoreError: nothing was changed.
        """
        threshold = class_set.threshold
        if threshold is not None and not (math.isfinite(threshold) and 0 <= threshold <= 1):
            raise InvalidThresholdError(threshold, DEFAULT_THRESHOLD)
        cleaned = tuple(
            self._file_class(number, cls) for number, cls in enumerate(class_set.classes, start=1)
        )
        for number, definition in enumerate(cleaned, start=1):
            earlier = cleaned[: number - 1]
            try:
                if any(other.key == definition.key for other in earlier):
                    raise DuplicateClassError(definition.name)
                check_not_look_alike(definition.name, (other.name for other in earlier))
            except DuplicateClassError as exc:
                raise ClassFileError(
                    f"Class {number} of the file ('{shown_input(definition.name)}') has the name "
                    "of an earlier class of the file. Rename or remove one of them.",
                    number=number,
                    name=definition.name,
                ) from exc
        document = ClassSetFile(cleaned, threshold)
        async with self._lock(guild_id):
            built = await self._current(guild_id)
            current = built.snapshot
            for number, definition in enumerate(cleaned, start=1):
                try:
                    if current.find(definition.name) is not None:
                        raise DuplicateClassError(definition.name)
                    check_not_look_alike(definition.name, (d.name for d in current.definitions))
                except DuplicateClassError as exc:
                    raise self._file_error(number, definition.name, exc) from exc
            limit = self.limits.classes_per_guild
            if len(current.definitions) + len(cleaned) > limit:
                raise ClassFileError.too_many(len(cleaned), len(current.definitions), limit)
            updated = await self._run(
                self._import, self.encoder, current, document, self._calibrations
            )
            await self._write(
                guild_id,
                self.store.import_classes(
                    guild_id,
                    document,
                    self.limits.classes_per_guild,
                    self.limits.examples_per_class,
                ),
            )
            self._swap(guild_id, updated, built)
        log.info("guild %d: imported %d classes", guild_id, len(cleaned))
        return cleaned

    def _file_class(self, number: int, cls: ClassDefinition) -> ClassDefinition:
        """A class of an export file cleaned as add_class, set_emoji and add_example clean it.

        Raises:
            ClassFileError: the class breaks one of their rules (``cause``: which).
        """
        try:
            definition = validate_class(cls.name, cls.description, self.limits)
            emoji = None if cls.emoji is None else check_emoji(cls.emoji)
            examples: list[str] = []
            for text in cls.examples:
                self._check_text(text)
                text = " ".join(text.split())
                if text not in examples:
                    examples.append(text)
            if len(examples) > self.limits.examples_per_class:
                raise ExampleLimitError(definition.name, self.limits.examples_per_class)
        except ZslError as exc:
            raise self._file_error(number, cls.name, exc) from exc
        return replace(definition, examples=tuple(examples), emoji=emoji)

    async def set_emoji(self, guild_id: int, name: str, emoji: str | None) -> ClassDefinition:
        """Give a class the emoji a watched channel's messages of it get (None: no emoji).

        Raises:
            InvalidEmojiError: it is not one emoji.
            ClassNotFoundError, StoreError: nothing was changed.
        """
        emoji = None if emoji is None else check_emoji(emoji)
        async with self._lock(guild_id):
            built = await self._current(guild_id)
            old = built.snapshot.get(name)
            definition = replace(old, emoji=emoji)
            updated = await self._run(
                _replace, self.encoder, built.snapshot, old.name, definition, self._calibrations
            )
            await self._write(guild_id, self.store.set_class_emoji(guild_id, old.name, emoji))
            self._swap(guild_id, updated, built)
        return definition

    async def watches(self, guild_id: int | None = None) -> list[Watch]:
        """The watched channels of a guild, or (None) of every guild this process serves.

        Raises:
            StoreUnavailableError: the store did not answer in time.
        """
        if guild_id is not None:
            self._check_served(guild_id)
        return [w for w in await self.store.list_watches(guild_id) if self.serves(w.guild_id)]

    async def watch(self, watch: Watch) -> None:
        """Watch a channel, or replace its watch (a disabled one acts again unless
        ``watch.disabled`` says otherwise).

        Raises:
            StoreError: nothing was changed.
        """
        if watch.action not in WATCH_ACTIONS:
            raise ValueError(f"unknown watch action {watch.action!r}")
        self._check_served(watch.guild_id)
        await self.store.set_watch(watch)

    async def unwatch(self, guild_id: int, channel_id: int) -> bool:
        """Stop watching a channel; False if it was not watched.

        Raises:
            StoreError: nothing was changed.
        """
        self._check_served(guild_id)
        return await self.store.delete_watch(guild_id, channel_id)

    async def autotags(self, guild_id: int | None = None) -> list[Autotag]:
        """The forums whose posts get tags, of a guild or (None) of every guild this process
        serves.

        Raises:
            StoreUnavailableError: the store did not answer in time.
        """
        if guild_id is not None:
            self._check_served(guild_id)
        return [a for a in await self.store.list_autotags(guild_id) if self.serves(a.guild_id)]

    async def autotag(self, autotag: Autotag) -> None:
        """Tag a forum's new posts by class, or change how.

        Raises:
            StoreError: nothing was changed.
        """
        if autotag.mode not in AUTOTAG_MODES or autotag.max_tags < 1:
            raise ValueError(f"unknown autotag mode {autotag.mode!r} or no tags")
        self._check_served(autotag.guild_id)
        await self.store.set_autotag(autotag)

    async def unautotag(self, guild_id: int, forum_id: int) -> bool:
        """Stop tagging a forum's posts; False if they were not tagged.

        Raises:
            StoreError: nothing was changed.
        """
        self._check_served(guild_id)
        return await self.store.delete_autotag(guild_id, forum_id)

    @staticmethod
    def _file_error(number: int, name: str, cause: ZslError) -> ClassFileError:
        return ClassFileError(
            f"Class {number} of the file ('{shown_input(name)}'): {cause}",
            number=number,
            name=name,
            cause=cause,
        )

    @staticmethod
    def _import(
        encoder: Encoder,
        current: ClassSet,
        class_set: ClassSetFile,
        calibrations: CalibrationCache | None = None,
    ) -> ClassSet:
        """``current`` with the classes of an export file added (and its threshold, unless None).

        Raises:
            ClassFileError: the model knows no word of a class or of one of its examples.
        """
        embedded = embed_classes(encoder, class_set.classes, calibrations)  # all in one pass
        for number, (definition, cls) in enumerate(
            zip(class_set.classes, embedded, strict=True), start=1
        ):
            try:
                for text in definition.examples:
                    encoder.encode(text, what="example")
                if isinstance(cls, UnknownWordsError):
                    raise cls
            except UnknownWordsError as exc:
                raise ZeroShotService._file_error(number, definition.name, exc) from exc
        classes = [cls for cls in embedded if isinstance(cls, ClassVector)]
        current = ClassSet((*current.classes, *classes), current.threshold, current.dormant)
        if class_set.threshold is not None:
            current = current.with_threshold(class_set.threshold)
        return current


def _retrieve(future: asyncio.Future[GuildRecord]) -> None:
    if not future.cancelled():
        future.exception()


def _classify_batch(
    encoder: Encoder, batch: list[_Request], scoring: ScoringConfig
) -> list[Classification | Exception]:
    """Answer each request: all texts are encoded together, then ranked guild by guild."""
    try:
        return _rank_together(encoder, batch, scoring)
    except Exception:
        # One text must not fail the others: rank them one by one to find it.
        return [_rank_alone(encoder, request, scoring) for request in batch]


def _rank_together(
    encoder: Encoder, batch: list[_Request], scoring: ScoringConfig
) -> list[Classification | Exception]:
    encoded = encoder.encode_many([request.text for request in batch])
    answers: dict[int, Classification | Exception] = {
        position: text for position, text in enumerate(encoded) if not isinstance(text, Encoded)
    }
    groups: dict[int, dict[int, tuple[Encoded, ClassSet]]] = {}  # top_k -> position -> text
    for position, (request, text) in enumerate(zip(batch, encoded, strict=True)):
        if isinstance(text, Encoded):
            groups.setdefault(request.top_k, {})[position] = (text, request.snapshot)
    for top_k, members in groups.items():
        texts, sets = zip(*members.values(), strict=True)
        answers.update(zip(members, rank_encoded(texts, sets, top_k, None, scoring), strict=True))
    return [answers[position] for position in range(len(batch))]


def _rank_alone(
    encoder: Encoder, request: _Request, scoring: ScoringConfig
) -> Classification | Exception:
    try:
        return rank(encoder, request.snapshot, request.text, request.top_k, None, scoring)
    except ZslError as exc:
        return exc
    except Exception as exc:
        log.exception("classifying one text failed")
        return exc


def _add(
    encoder: Encoder,
    current: ClassSet,
    definition: ClassDefinition,
    calibrations: CalibrationCache | None = None,
) -> ClassSet:
    return current.added(embed_class(encoder, definition, calibrations))


def _replace(
    encoder: Encoder,
    current: ClassSet,
    old_name: str,
    definition: ClassDefinition,
    calibrations: CalibrationCache | None = None,
) -> ClassSet:
    return current.replaced(old_name, embed_class(encoder, definition, calibrations))


def _same_classes(snapshot: ClassSet, record: GuildRecord) -> bool:
    """Whether the record holds exactly the snapshot's classes (in any order)."""
    definitions = snapshot.definitions
    return len(definitions) == len(record.classes) and set(definitions) == set(record.classes)


def _first_jobs(jobs: list[_BuildJob], definitions: int) -> list[_BuildJob]:
    """The first jobs holding at most ``definitions`` class definitions between them (at
    least the first job, however many it holds)."""
    total = 0
    for count, job in enumerate(jobs):
        total += len(job.record.classes)
        if total > definitions and count > 0:
            return jobs[:count]
    return jobs[:]


def _characters(jobs: list[_BuildJob]) -> int:
    """What the jobs' definitions hold to encode: their names, descriptions and examples."""
    return sum(
        len(d.name) + len(d.description) + sum(map(len, d.examples))
        for job in jobs
        for d in job.record.classes
    )


def _build_guilds(
    encoder: Encoder,
    jobs: list[tuple[int, GuildRecord, ClassSet]],
    calibrations: CalibrationCache | None = None,
) -> list[ClassSet | Exception]:
    """Each guild's snapshot (guild id, its record, its snapshot before) or why it failed.

    Classes that a guild's snapshot before holds unchanged are reused; every other class of
    every guild is embedded in one ``embed_classes`` call (one pass over the model's tables
    for all of them; a class comes out the same bit for bit alone or among others), and those
    calibrated before take their calibration from ``calibrations``.
    """
    new: dict[ClassDefinition, None] = {}  # in order, each once
    for _, record, previous in jobs:
        kept = {c.definition for c in previous.classes}
        new.update(dict.fromkeys(d for d in record.classes if d not in kept))
    try:
        embedded = dict(zip(new, embed_classes(encoder, list(new), calibrations), strict=True))
    except Exception:
        if len(jobs) == 1:
            raise
        # One guild must not fail the others: build them one by one to find it.
        return [_build_one(encoder, job, calibrations) for job in jobs]
    return [
        _snapshot_of(guild_id, record, previous, embedded) for guild_id, record, previous in jobs
    ]


def _build_one(
    encoder: Encoder,
    job: tuple[int, GuildRecord, ClassSet],
    calibrations: CalibrationCache | None,
) -> ClassSet | Exception:
    try:
        return _build_guilds(encoder, [job], calibrations)[0]
    except Exception as exc:
        log.exception("guild %d: embedding its classes failed", job[0])
        return exc


def _snapshot_of(
    guild_id: int,
    record: GuildRecord,
    previous: ClassSet,
    embedded: dict[ClassDefinition, ClassVector | UnknownWordsError],
) -> ClassSet:
    """The guild's snapshot: its classes from ``previous`` when unchanged, else ``embedded``."""
    reusable = {c.definition: c for c in previous.classes}
    vectors: list[ClassVector] = []
    dormant: list[ClassDefinition] = []
    for definition in record.classes:
        cls = reusable[definition] if definition in reusable else embedded[definition]
        if isinstance(cls, ClassVector):
            vectors.append(cls)
            continue
        # Possible after a model change. The class stays, untouched, and comes back under a
        # model that knows its words.
        log.warning(
            "guild %d: class %r has no word known to this model; it is dormant",
            guild_id,
            definition.name,
        )
        dormant.append(definition)
    return ClassSet(tuple(vectors), record.threshold, tuple(dormant))
