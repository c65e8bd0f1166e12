"""zsl eval's open-set AUROC: each class left out in turn, on hand-made confidences."""

from __future__ import annotations

import pytest

from zsl.evaluation import open_set_auroc

LABELS = ["a", "b", "c"]


def test_a_missing_class_always_less_confident_scores_one() -> None:
    gold = ["a", "b", "c"]
    # With its own class present each text is sure of it (0.9); without it, the best other
    # class gets 0.2, while texts that keep their class stay at 0.9.
    best_two = [(("a", 0.9), ("b", 0.2)), (("b", 0.9), ("c", 0.2)), (("c", 0.9), ("a", 0.2))]

    assert open_set_auroc(gold, best_two, LABELS) == 1.0


def test_a_missing_class_more_confident_scores_zero() -> None:
    gold = ["a", "b", "c"]
    best_two = [(("a", 0.1), ("b", 0.9)), (("b", 0.1), ("c", 0.9)), (("c", 0.1), ("a", 0.9))]

    assert open_set_auroc(gold, best_two, LABELS) == 0.0


def test_ties_count_half_and_unknown_texts_have_no_confidence() -> None:
    gold = ["a", "a", "b"]
    # Leaving out a: the a-texts fall back to 0.5 and 0.0 (no known word); the b-text keeps
    # 0.5. Pairs: (0.5 vs 0.5) = 1/2, (0.5 vs 0.0) = 1, mean 0.75. Leaving out b: the b-text
    # falls back to 0.4 against the a-texts' 0.8 and 0.0: (0.8 > 0.4) = 1, (0.0 < 0.4) = 0,
    # mean 0.5. c has no texts and is skipped.
    best_two = [(("a", 0.8), ("b", 0.5)), (), (("b", 0.5), ("a", 0.4))]

    assert open_set_auroc(gold, best_two, LABELS) == pytest.approx((0.75 + 0.5) / 2)


def test_with_no_class_to_leave_out_it_is_chance() -> None:
    assert open_set_auroc(["a", "a"], [(("a", 0.9),), (("a", 0.8),)], ["a"]) == 0.5
