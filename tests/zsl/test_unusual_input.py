"""Invisible, look-alike and unstorable characters: the same answer on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from zsl import (
    DuplicateClassError,
    InvalidClassError,
    InvalidTextError,
    WordVectors,
    ZeroShotService,
)
from zsl.errors import ConfusableClassError
from zsl.records import ClassDefinition
from zsl.store import open_store

pytestmark = pytest.mark.asyncio

SPORTS = ClassDefinition("sports", "football match")
MUSIC = ClassDefinition("music", "song album")
CYRILLIC_SPORTS = "\u0455ports"  # CYRILLIC SMALL LETTER DZE, then Latin "ports"
INVISIBLE_SUFFIXES = ["\u034f", "\ufe0f", "\U000e0100", "\u3164"]
BROKEN_TEXT = (
    "The text contains a null or broken character that cannot be kept. Remove it and try again."
)


class TestTheStoreRefusesLookAlikes:
    async def test_a_look_alike_of_another_class_is_refused(self, store_url: str) -> None:
        store = await open_store(store_url)
        await store.insert_class(1, SPORTS, 100)
        await store.insert_class(1, MUSIC, 100)

        with pytest.raises(ConfusableClassError) as inserted:
            await store.insert_class(1, ClassDefinition(CYRILLIC_SPORTS, "game"), 100)
        with pytest.raises(ConfusableClassError) as renamed:
            await store.replace_class(1, "music", ClassDefinition("\u0405PORTS", "song"))
        await store.insert_class(2, ClassDefinition(CYRILLIC_SPORTS, "game"), 100)  # other guild
        await store.replace_class(1, "sports", ClassDefinition(CYRILLIC_SPORTS, "goal"))  # itself
        state = await store.load_all()
        await store.close()

        assert (inserted.value.existing, renamed.value.existing) == ("sports", "sports")
        assert state[1].classes == (ClassDefinition(CYRILLIC_SPORTS, "goal"), MUSIC)
        assert state[2].classes == (ClassDefinition(CYRILLIC_SPORTS, "game"),)

    async def test_two_processes_cannot_race_two_look_alikes_in(self, store_url: str) -> None:
        first, second = await open_store(store_url), await open_store(store_url)

        outcomes = await asyncio.gather(
            first.insert_class(1, SPORTS, 100),
            second.insert_class(1, ClassDefinition(CYRILLIC_SPORTS, "game"), 100),
            return_exceptions=True,
        )
        stored = await first.load_guild(1)
        await first.close()
        await second.close()

        assert len(stored.classes) == 1
        assert sum(isinstance(o, ConfusableClassError) for o in outcomes) == 1
        assert outcomes.count(None) == 1

    @pytest.mark.parametrize("name", ["\u3164", "\u2800", "\u115f \ufe0f"])
    async def test_a_name_that_shows_blank_is_refused(self, store_url: str, name: str) -> None:
        store = await open_store(store_url)

        with pytest.raises(InvalidClassError, match="visible letter"):
            await store.insert_class(1, ClassDefinition(name, "football"), 100)
        state = await store.load_all()
        await store.close()

        assert state == {}


class TestTheServiceRefusesLookAlikes:
    async def test_six_names_that_all_show_as_sports_make_one_class(
        self, tiny: WordVectors, store_url: str
    ) -> None:
        async with await ZeroShotService.open(tiny, store_url) as service:
            await service.add_class(1, "sports", "football")
            errors = []
            for name in [*(f"sports{s}" for s in INVISIBLE_SUFFIXES), CYRILLIC_SPORTS]:
                with pytest.raises(DuplicateClassError) as caught:
                    await service.add_class(1, name, "goal")
                errors.append(caught.value)
            listed = await service.classes(1)
        store = await open_store(store_url)
        stored = await store.load_all()
        await store.close()

        assert [type(e) for e in errors] == [DuplicateClassError] * 4 + [ConfusableClassError]
        assert str(errors[-1]) == (
            "The name '\u0455ports' looks the same as the existing class 'sports'. Pick a clearly "
            "different name."
        )
        assert listed == stored[1].classes == (ClassDefinition("sports", "football"),)

    @pytest.mark.parametrize("name", ["\u3164", "\u2800", " \u2800\u3164 "])
    async def test_a_name_that_shows_blank_is_refused(
        self, tiny: WordVectors, store_url: str, name: str
    ) -> None:
        async with await ZeroShotService.open(tiny, store_url) as service:
            with pytest.raises(InvalidClassError, match="needs a name"):
                await service.add_class(1, name, "football")
            await service.add_class(1, "sports", "football")
            with pytest.raises(InvalidClassError, match="needs a name"):
                await service.edit_class(1, "sports", new_name=name)
            listed = await service.classes(1)

        assert listed == (ClassDefinition("sports", "football"),)

    async def test_renaming_to_a_look_alike_of_another_class_is_refused(
        self, tiny: WordVectors, store_url: str
    ) -> None:
        async with await ZeroShotService.open(tiny, store_url) as service:
            await service.add_class(1, "sports", "football")
            await service.add_class(1, "music", "song")

            with pytest.raises(ConfusableClassError) as caught:
                await service.edit_class(1, "music", new_name=CYRILLIC_SPORTS)
            await service.edit_class(1, "sports", new_name=CYRILLIC_SPORTS)  # itself: fine
            listed = await service.classes(1)

        assert caught.value.existing == "sports"
        assert [d.name for d in listed] == [CYRILLIC_SPORTS, "music"]

    async def test_a_name_stored_with_invisible_characters_still_blocks_its_look_alike(
        self, tiny: WordVectors, store_url: str
    ) -> None:
        store = await open_store(store_url)  # as an older version stored it, uncleaned
        await store.insert_class(1, ClassDefinition("sports\u034f", "football"), 100)
        await store.close()

        async with await ZeroShotService.open(tiny, store_url) as service:
            with pytest.raises(ConfusableClassError) as caught:
                await service.add_class(1, "sports", "goal")
            edited = await service.edit_class(1, "sports\u034f", description="goal")
            listed = await service.classes(1)

        assert caught.value.existing == "sports\u034f"
        assert edited == listed[0] == ClassDefinition("sports", "goal")  # cleaned by the edit


class TestUnstorableCharacters:
    @pytest.mark.parametrize("text", ["what a goal\x00", "what a \ud800goal", "\udfff goal"])
    async def test_examples_and_votes_are_refused_alike_on_every_backend(
        self, tiny: WordVectors, store_url: str, text: str
    ) -> None:
        async with await ZeroShotService.open(tiny, store_url) as service:
            await service.add_class(1, "sports", "football")

            with pytest.raises(InvalidTextError) as example:
                await service.add_example(1, "sports", text)
            with pytest.raises(InvalidTextError) as vote:
                await service.vote(1, 7, text, "sports", None)
            with pytest.raises(InvalidTextError) as classified:
                await service.classify(1, text)
            listed = await service.classes(1)
            votes = await service.votes(1)

        assert str(example.value) == str(vote.value) == str(classified.value) == BROKEN_TEXT
        assert listed == (ClassDefinition("sports", "football"),)
        assert votes == []

    async def test_a_vote_naming_a_broken_class_is_refused(
        self, tiny: WordVectors, store_url: str
    ) -> None:
        async with await ZeroShotService.open(tiny, store_url) as service:
            await service.add_class(1, "sports", "football")

            with pytest.raises(InvalidTextError, match="null or broken"):
                await service.vote(1, 7, "what a goal", "sports\x00", None)
            with pytest.raises(InvalidTextError, match="null or broken"):
                await service.vote(1, 7, "what a goal", "sports", "sp\ud800orts")
            votes = await service.votes(1)

        assert votes == []
