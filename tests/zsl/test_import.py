"""Export and import of a guild's class set: the file's shape, and an import that adds all of
a file or nothing, through the service (tiny vectors) on both databases."""

from __future__ import annotations

import pytest

import zsl
from zsl import (
    ClassDefinition,
    ClassFileError,
    ClassSetFile,
    ZeroShotService,
    dump_class_set,
    parse_class_set,
)

GUILD = 5
SPORTS = ClassDefinition("sports", "football team goal", ("the team scored a goal",), "\u26bd")
SONGS = ClassDefinition("music", "song album band", (), None)


async def open_service(tiny: zsl.WordVectors, url: str, **limits: int) -> ZeroShotService:
    return await ZeroShotService.open(tiny, url, limits=zsl.Limits(**limits))


@pytest.mark.asyncio
async def test_an_unset_threshold_exports_as_null_and_imports_as_the_default(
    tiny: zsl.WordVectors, db_url: str
) -> None:
    service = await open_service(tiny, db_url)
    try:
        await service.add_class(GUILD, "sports", "football team goal")
        exported = dump_class_set(await service.class_set(GUILD))
        await service.import_classes(GUILD + 1, parse_class_set(exported))
        threshold = await service.class_set(GUILD + 1)
        effective = await service.threshold(GUILD + 1)
    finally:
        await service.close()

    assert '"threshold": null' in exported
    assert threshold.threshold is None
    assert effective == zsl.DEFAULT_THRESHOLD


@pytest.mark.asyncio
async def test_an_export_round_trips_emoji_examples_and_threshold(
    tiny: zsl.WordVectors, store_url: str
) -> None:
    service = await open_service(tiny, store_url)
    try:
        await service.import_classes(GUILD, ClassSetFile((SPORTS, SONGS), 0.6))
        exported = await service.class_set(GUILD)
    finally:
        await service.close()
    reopened = await open_service(tiny, store_url)
    try:
        stored = await reopened.class_set(GUILD)
    finally:
        await reopened.close()

    assert exported == stored == ClassSetFile((SPORTS, SONGS), 0.6)
    assert parse_class_set(dump_class_set(stored)) == stored


@pytest.mark.parametrize(
    ("classes", "number", "fragment"),
    [
        # the second class is taken on the server (ignoring case)
        ((SONGS, ClassDefinition("Politics", "vote election")), 2, "already exists"),
        # the model knows no word of the second class
        ((SONGS, ClassDefinition("qqq", "zzz xxx")), 2, "qqq"),
        # an example the model knows no word of
        ((ClassDefinition("music", "song", ("qqq zzz",)),), 1, "example"),
        # two classes of the file with one name
        ((SONGS, ClassDefinition("MUSIC", "band")), 2, "earlier class of the file"),
        # not one emoji
        ((ClassDefinition("music", "song", (), "music"),), 1, "not one emoji"),
        # more examples than a class keeps
        ((ClassDefinition("music", "song", ("a song", "the song", "a band")),), 1, "examples"),
    ],
)
@pytest.mark.asyncio
async def test_a_refused_file_adds_nothing(
    tiny: zsl.WordVectors,
    store_url: str,
    classes: tuple[ClassDefinition, ...],
    number: int,
    fragment: str,
) -> None:
    service = await open_service(tiny, store_url, examples_per_class=2)
    try:
        await service.add_class(GUILD, "politics", "vote election minister")
        before = await service.store.load_guild(GUILD)
        with pytest.raises(ClassFileError) as refused:
            await service.import_classes(GUILD, ClassSetFile(classes, 0.9))
        in_memory = await service.class_set(GUILD)
        after = await service.store.load_guild(GUILD)
    finally:
        await service.close()

    assert refused.value.number == number
    assert fragment in str(refused.value)
    assert in_memory == ClassSetFile((ClassDefinition("politics", "vote election minister"),))
    assert after == before
    assert after.version == before.version


@pytest.mark.asyncio
async def test_a_file_that_would_pass_the_class_limit_adds_nothing(
    tiny: zsl.WordVectors, store_url: str
) -> None:
    service = await open_service(tiny, store_url, classes_per_guild=2)
    try:
        await service.add_class(GUILD, "politics", "vote election")
        with pytest.raises(ClassFileError) as refused:
            await service.import_classes(GUILD, ClassSetFile((SPORTS, SONGS)))
        after = await service.store.load_guild(GUILD)
    finally:
        await service.close()

    assert isinstance(refused.value.cause, zsl.ClassLimitError)
    assert "more than 2, the maximum" in str(refused.value)
    assert [c.name for c in after.classes] == ["politics"]


@pytest.mark.asyncio
async def test_the_store_refuses_a_file_whole_when_another_process_got_there_first(
    store_url: str,
) -> None:
    # The service checked the file against its snapshot; the store checks again under the
    # guild's lock and rolls everything back, threshold included.
    from zsl.store import open_store

    store = await open_store(store_url)
    try:
        await store.insert_class(GUILD, ClassDefinition("music", "band"), 100)
        with pytest.raises(ClassFileError) as refused:
            await store.import_classes(GUILD, ClassSetFile((SPORTS, SONGS), 0.3), 100, 20)
        after = await store.load_guild(GUILD)
    finally:
        await store.close()

    assert (refused.value.number, refused.value.name) == (2, "music")
    assert isinstance(refused.value.cause, zsl.DuplicateClassError)
    assert after.classes == (ClassDefinition("music", "band"),)
    assert after.threshold is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid JSON (line 1)"),
        ('["a", "b"]', "has no list of classes"),
        ('{"classes": [], "extra": 1}', "unknown field 'extra'"),
        ('{"classes": [], "threshold": 2}', "between 0 and 1"),
        ('{"classes": [], "threshold": true}', "between 0 and 1"),
        ('{"classes": [{"description": "x"}]}', "Class 1 in the file has no name"),
        ('{"classes": [{"name": "a", "description": 3}]}', "description that is not text"),
        ('{"classes": [{"name": "a", "examples": "x"}]}', "examples that are not a list"),
        ('{"classes": [{"name": "a", "emoji": 1}]}', "emoji that is not text"),
        ('{"classes": [{"name": "a", "desciption": "x"}]}', "unknown field 'desciption'"),
    ],
)
def test_a_file_of_the_wrong_shape_is_refused_with_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ClassFileError) as refused:
        parse_class_set(text)

    assert fragment in str(refused.value)
    assert str(refused.value).endswith(".")


def test_a_file_may_leave_out_what_a_class_does_not_have() -> None:
    parsed = parse_class_set('{"classes": [{"name": "music"}]}')

    assert parsed == ClassSetFile((ClassDefinition("music"),), None)
