from __future__ import annotations

import dataclasses
import gc
import tracemalloc

import numpy as np
import pytest

import zsl.embedding
from zsl import ClassSet, Encoder, InvalidClassError, Limits, UnknownWordsError, WordVectors
from zsl.bench import bench_classes
from zsl.classes import ClassVector, embed_class, embed_classes, validate_class
from zsl.classifier import calibrated_scores
from zsl.errors import (
    ClassLimitError,
    ClassNotFoundError,
    ConfusableClassError,
    DuplicateClassError,
)
from zsl.records import ClassDefinition, name_key, name_skeleton

LIMITS = Limits()

# Five names that all display as "sports": invisible suffixes (a combining grapheme joiner, an
# emoji variation selector, a supplementary variation selector, a Hangul filler) and a Cyrillic
# DZE for the "s".
SPORTS_LOOK_ALIKES = [
    "sports\u034f",
    "sports\ufe0f",
    "sports\U000e0100",
    "sports\u3164",
    "\u0455ports",
]


class TestValidation:
    def test_cleans_whitespace_and_invisible_characters(self) -> None:
        definition = validate_class("  sports\u200b  news ", " football\n match ", LIMITS)

        assert definition == ClassDefinition("sports news", "football match")

    @pytest.mark.parametrize(
        ("name", "description", "message"),
        [
            ("", "x", "needs a name"),
            ("   \u200b ", "x", "needs a name"),
            ("a" * 51, "", "at most 50 characters"),
            ("two\nlines", "", "one line"),
            ("bell\x07", "", "control characters"),
            ("ok", "d" * 301, "at most 300 characters"),
            ("ok", "nul\x00here", "control characters"),
            ("bad\ud800", "", "broken characters"),
        ],
    )
    def test_refusals_say_what_to_do(self, name: str, description: str, message: str) -> None:
        with pytest.raises(InvalidClassError, match=message):
            validate_class(name, description, LIMITS)

    @pytest.mark.parametrize(
        "name", ["\u3164", "\u2800", "\u115f\u1160", "\uffa0", " \u2800 \u3164 ", "\U000e0020"]
    )
    def test_a_name_that_shows_blank_is_refused(self, name: str) -> None:
        with pytest.raises(InvalidClassError, match="needs a name"):
            validate_class(name, "football", LIMITS)

    @pytest.mark.parametrize("name", SPORTS_LOOK_ALIKES[:4])
    def test_invisible_characters_leave_names_and_descriptions(self, name: str) -> None:
        definition = validate_class(name, "foot\u034fball\ufe0f\u2800match", LIMITS)

        assert definition == ClassDefinition("sports", "football match")

    def test_limits_are_settings(self) -> None:
        short = Limits(name_length=5)

        with pytest.raises(InvalidClassError, match="at most 5"):
            validate_class("sixsix", "", short)

    def test_names_differing_in_case_width_or_spacing_are_the_same(self) -> None:
        assert (
            name_key("Sports  News")
            == name_key("sports news")
            == name_key("\uff33\uff30\uff2f\uff32\uff34\uff33 news")
        )


class TestClassSet:
    def _set(self, tiny: WordVectors, *names: str) -> ClassSet:
        encoder = Encoder(tiny)
        classes = ClassSet.EMPTY
        for name in names:
            classes = classes.added(embed_class(encoder, ClassDefinition(name)))
        return classes

    def test_snapshot_is_immutable(self, tiny: WordVectors) -> None:
        classes = self._set(tiny, "sports", "music")

        with pytest.raises(ValueError, match="read-only"):
            classes.matrix[0, 0] = 1.0

    def test_changes_return_new_sets_and_leave_the_old_one(self, tiny: WordVectors) -> None:
        before = self._set(tiny, "sports", "music")
        encoder = Encoder(tiny)

        after = before.added(embed_class(encoder, ClassDefinition("politics")))
        renamed = after.replaced("MUSIC", embed_class(encoder, ClassDefinition("band")))
        smaller = renamed.removed("sports")

        assert [d.name for d in before.definitions] == ["sports", "music"]
        assert [d.name for d in after.definitions] == ["sports", "music", "politics"]
        assert [d.name for d in renamed.definitions] == ["sports", "band", "politics"]
        assert [d.name for d in smaller.definitions] == ["band", "politics"]
        assert smaller.matrix.shape == (2, tiny.dim)

    def test_refuses_duplicates_and_the_limit(self, tiny: WordVectors) -> None:
        classes = self._set(tiny, "sports", "music")

        with pytest.raises(DuplicateClassError):
            classes.check_can_add(ClassDefinition("SPORTS"), LIMITS)
        with pytest.raises(ClassLimitError, match="2 classes"):
            classes.check_can_add(ClassDefinition("politics"), Limits(classes_per_guild=2))
        with pytest.raises(ClassNotFoundError):
            classes.removed("cooking")

    @pytest.mark.parametrize("name", SPORTS_LOOK_ALIKES)
    def test_a_name_that_looks_like_an_existing_one_is_refused(
        self, tiny: WordVectors, name: str
    ) -> None:
        classes = self._set(tiny, "music", "sports")

        with pytest.raises(DuplicateClassError) as caught:
            classes.check_can_add(validate_class(name, "", LIMITS), LIMITS)

        assert "'sports'" in str(caught.value)
        if name == "\u0455ports":  # a different name, drawn the same
            assert isinstance(caught.value, ConfusableClassError)
            assert caught.value.existing == "sports"
            assert str(caught.value) == (
                "The name '\u0455ports' looks the same as the existing class 'sports'. Pick a "
                "clearly different name."
            )

    def test_a_look_alike_of_an_older_name_is_refused_whichever_came_first(
        self, tiny: WordVectors
    ) -> None:
        # Names stored before invisible characters were cleaned still hold them.
        encoder = Encoder(tiny)
        classes = ClassSet.EMPTY
        for name in ("music", "sports\u3164", "\u0455ports"):
            classes = classes.added(embed_class(encoder, ClassDefinition(name, "football")))

        with pytest.raises(ConfusableClassError) as caught:
            classes.check_can_add(ClassDefinition("sports"), LIMITS)

        assert caught.value.existing == "sports\u3164"

    @pytest.mark.parametrize(
        ("first", "second", "alike"),
        [
            ("sports", "\u0405PORTS", True),  # Cyrillic capital DZE, other case
            ("paypal", "p\u0430yp\u0430l", True),  # Cyrillic a
            ("sports", "\uff53\uff50\uff4f\uff52\uff54\uff53", True),  # fullwidth
            ("video games", "video  games\u2800", True),
            ("class 1", "class l", True),
            ("sports", "spots", False),
            ("music", "musik", False),
        ],
    )
    def test_skeletons_follow_unicode_confusables(
        self, first: str, second: str, alike: bool
    ) -> None:
        assert (name_skeleton(first) == name_skeleton(second)) is alike

    def test_class_vector_uses_name_and_description(self, tiny: WordVectors) -> None:
        encoder = Encoder(tiny)

        plain = embed_class(encoder, ClassDefinition("sports"))
        described = embed_class(encoder, ClassDefinition("sports", "band concert"))

        assert float(plain.vector @ described.vector) < 0.95
        assert np.linalg.norm(described.vector) == pytest.approx(1.0, abs=1e-5)

    def test_class_without_known_words_is_refused(self, tiny: WordVectors) -> None:
        with pytest.raises(UnknownWordsError, match="zorb") as info:
            embed_class(Encoder(tiny), ClassDefinition("zorb", "quux blarg"))

        assert info.value.words == ("zorb", "quux", "blarg")

    def test_unknown_description_words_are_kept_as_a_note(self, tiny: WordVectors) -> None:
        cls = embed_class(Encoder(tiny), ClassDefinition("sports", "football zorb"))

        assert cls.unknown_words == ("zorb",)


def exactly(cls: ClassVector) -> tuple[object, ...]:
    """Everything a class vector holds, arrays as their bytes: equal only if bit for bit."""
    return (
        cls.definition,
        cls.vector.tobytes(),
        cls.word_vectors.tobytes(),
        cls.word_weights.tobytes(),
        cls.vector_calibration,
        cls.words_calibration,
        cls.combined_std,
        cls.vector_share,
        cls.unknown_words,
        cls.related_words,
    )


def usable(embedded: list[ClassVector | UnknownWordsError]) -> list[ClassVector]:
    assert all(isinstance(c, ClassVector) for c in embedded)
    return [c for c in embedded if isinstance(c, ClassVector)]


class TestEmbeddedTogether:
    """A guild's classes are embedded together (one pass over the neighbour table and one over
    the background for all of them), and each comes out as it would alone, bit for bit: a
    guild rebuilt with other company, or a class added later, ranks exactly the same."""

    @pytest.mark.parametrize("model", ["glove", "default_model"])
    def test_a_class_embedded_with_others_is_the_same_bit_for_bit_as_alone(
        self, request: pytest.FixtureRequest, model: str
    ) -> None:
        vectors: WordVectors = request.getfixturevalue(model)
        encoder = Encoder(vectors)
        common = [w for w in list(vectors.key_to_index)[1000:1200] if w.isalpha()][:70]
        definitions = [
            ClassDefinition("sports", "football match team goal"),
            ClassDefinition("music", "song album band", examples=("a new single from the band",)),
            ClassDefinition("weather", examples=("rain and snow tomorrow",)),
            *(ClassDefinition(word) for word in common),  # bare names: expanded
        ]

        alone = [embed_class(encoder, d) for d in definitions]
        together = embed_classes(encoder, definitions)
        backwards = embed_classes(encoder, definitions[::-1])[::-1]
        in_pairs = [
            c
            for i in range(0, len(definitions), 2)
            for c in embed_classes(encoder, definitions[i : i + 2])
        ]

        # The batch crosses every boundary where the work is cut up: more bare names than one
        # product with the neighbour table takes, more words than one with the background.
        assert len(common) > zsl.embedding.EXPAND_GROUP
        assert sum(len(c.word_weights) for c in alone) > zsl.embedding.MATCH_GROUP
        expected = [exactly(c) for c in alone]
        assert [exactly(c) for c in usable(together)] == expected
        assert [exactly(c) for c in usable(backwards)] == expected
        assert [exactly(c) for c in usable(in_pairs)] == expected
        assert len(alone[3].related_words) == encoder.config.expansion_words

    def test_a_class_with_no_known_word_gets_its_error_in_its_place(
        self, tiny: WordVectors
    ) -> None:
        encoder = Encoder(tiny)
        definitions = [
            ClassDefinition("sports", "football"),
            ClassDefinition("zorb", "quux blarg"),
            ClassDefinition("music"),
        ]

        embedded = embed_classes(encoder, definitions)

        sports, zorb, music = embedded
        assert isinstance(zorb, UnknownWordsError)
        assert zorb.words == ("zorb", "quux", "blarg")
        assert isinstance(sports, ClassVector)
        assert isinstance(music, ClassVector)
        assert exactly(sports) == exactly(embed_class(encoder, definitions[0]))
        assert exactly(music) == exactly(embed_class(encoder, definitions[2]))

    def test_described_classes_never_make_the_neighbour_table(self, tiny: WordVectors) -> None:
        # The table of candidate neighbours (50 MB with the default model) is made when a bare
        # name first needs it; a process whose guilds all describe their classes never pays.
        encoder = Encoder(tiny)

        embed_classes(encoder, [ClassDefinition("sports", "football")])
        described_only = "_neighbour_table" in vars(encoder)
        embed_classes(encoder, [ClassDefinition("music")])

        assert described_only is False
        assert "_neighbour_table" in vars(encoder)


class TestSnapshotBytes:
    """What a snapshot says it holds is what it holds: the guild cache's budget relies on it."""

    def test_nbytes_is_what_building_snapshots_keeps_alive(
        self, default_model: WordVectors
    ) -> None:
        encoder = Encoder(default_model)
        embed_classes(encoder, [ClassDefinition("weather")])  # the tables made once, not counted
        guilds = [
            [
                ClassDefinition(f"topic {g} {i}", f"football match {i} election {g}")
                for i in range(19)
            ]
            + [ClassDefinition(f"music {g}")]
            for g in range(10)
        ]
        gc.collect()
        tracemalloc.start()
        try:
            snapshots = [ClassSet(tuple(embed_classes(encoder, guild))) for guild in guilds]
            gc.collect()
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        counted = sum(snapshot.nbytes for snapshot in snapshots)
        # Never less than what is held (the budget would be exceeded), and not far more.
        assert held <= counted <= 1.3 * held
        # The classes' vectors are views of the snapshot's arrays, not copies.
        first = snapshots[0].classes[0]
        assert np.shares_memory(first.vector, snapshots[0].matrix)
        assert np.shares_memory(first.word_vectors, snapshots[0].words)

    def test_a_set_past_the_shortlist_threshold_keeps_unit_heads_and_counts_them(
        self, default_model: WordVectors
    ) -> None:
        encoder = Encoder(default_model)
        embedded = embed_classes(
            encoder, [ClassDefinition(n, d) for n, d in bench_classes(default_model, 1_100)]
        )
        vectors = [c for c in embedded if isinstance(c, ClassVector)]
        total = np.cumsum([len(c.word_weights) for c in vectors])
        fit = int(np.searchsorted(total, ClassSet.SHORTLIST_ABOVE, side="right"))
        at_threshold = ClassSet(tuple(vectors[:fit]))
        gc.collect()
        tracemalloc.start()
        try:
            above = ClassSet(tuple(vectors[: fit + 1]))
            gc.collect()
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

        dims = ClassSet.SHORTLIST_DIMS
        assert len(at_threshold.words) <= ClassSet.SHORTLIST_ABOVE < len(above.words)
        assert at_threshold.heads is None
        assert above.heads is not None
        assert above.heads.shape == (dims, len(above.words))
        assert above.heads.flags.c_contiguous
        lead = above.words[:, :dims]
        np.testing.assert_allclose(
            above.heads.T, lead / np.linalg.norm(lead, axis=1)[:, None], rtol=1e-5, atol=1e-6
        )
        assert above.heads_on(dims) is above.heads
        half = above.words[:, : dims // 2]
        np.testing.assert_allclose(
            above.heads_on(dims // 2).T,
            half / np.linalg.norm(half, axis=1)[:, None],
            rtol=1e-5,
            atol=1e-6,
        )
        # Counted: never less than what the set holds (the heads are a sixth of it), not far more.
        assert held <= above.nbytes <= 1.3 * held

    def test_a_model_too_narrow_to_shortlist_keeps_no_heads(self, glove: WordVectors) -> None:
        encoder = Encoder(glove)
        embedded = embed_classes(
            encoder, [ClassDefinition(n, d) for n, d in bench_classes(glove, 1_100)]
        )
        vectors = tuple(c for c in embedded if isinstance(c, ClassVector))

        classes = ClassSet(vectors)

        # 50 dimensions, fewer than twice the 64 an estimate uses: ranked exactly, nothing kept.
        assert len(classes.words) > ClassSet.SHORTLIST_ABOVE
        assert classes.words.shape[1] < 2 * ClassSet.SHORTLIST_DIMS
        assert classes.heads is None


@pytest.mark.parametrize("share", [0.5, 0.9])
def test_the_models_vector_share_weighs_the_two_views(tiny: WordVectors, share: float) -> None:
    encoder = Encoder(dataclasses.replace(tiny, vector_share=share))
    cls = embed_class(encoder, ClassDefinition("sports", "football goal team"))
    text = encoder.encode("the team scored a late goal")

    score = calibrated_scores([text], [ClassSet((cls,))])[0, 0]

    # By hand: each view as a z-score on ordinary text, mixed by the share.
    vector_z = (float(text.vector @ cls.vector) - cls.vector_calibration.mean) / (
        cls.vector_calibration.std
    )
    best = (cls.word_vectors @ text.word_vectors.T).max(axis=1)
    words_z = (float(best @ cls.word_weights) - cls.words_calibration.mean) / (
        cls.words_calibration.std
    )
    assert cls.vector_share == share
    assert score == pytest.approx(
        (share * vector_z + (1 - share) * words_z) / cls.combined_std, rel=1e-4
    )
