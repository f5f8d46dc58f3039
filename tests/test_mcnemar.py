"""McNemar's test against tables worked by hand: the exact binomial form for few discordant documents, the
chi-square form (continuity corrected) for many. The references use only the formulas, not scipy."""

from __future__ import annotations

import math

import pytest

from steps.core.compare import EXACT_BELOW, mcnemar, mcnemar_p


def exact_two_sided(b: int, c: int) -> float:
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def chi_square_corrected(b: int, c: int) -> float:
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    return math.erfc(math.sqrt(statistic / 2))  # the chi-square survival function with one degree of freedom


@pytest.mark.parametrize("b,c,p", [(1, 6, 0.125), (0, 5, 0.0625), (3, 3, 1.0), (0, 1, 1.0), (2, 10, 0.0386)])
def test_small_tables_use_the_exact_binomial(b, c, p):
    result = mcnemar_p(b, c)
    assert result["method"] == "exact binomial"
    assert result["p_value"] == pytest.approx(p, abs=5e-5)
    assert result["p_value"] == pytest.approx(exact_two_sided(b, c))


@pytest.mark.parametrize("b,c", [(47, 4), (10, 20), (30, 30), (100, 60), (13, 12)])
def test_large_tables_use_the_corrected_chi_square(b, c):
    result = mcnemar_p(b, c)
    assert b + c >= EXACT_BELOW and result["method"].startswith("chi-square")
    assert result["p_value"] == pytest.approx(chi_square_corrected(b, c), rel=1e-9)


def test_the_textbook_values():
    assert mcnemar_p(10, 20)["p_value"] == pytest.approx(0.1003, abs=1e-4)  # chi2 = 2.7
    assert mcnemar_p(47, 4)["statistic"] == pytest.approx(1764 / 51)
    assert mcnemar_p(47, 4)["p_value"] < 1e-8


def test_counts_come_from_the_paired_outcomes():
    best = [True, True, True, False, False, True, True]
    other = [True, False, False, False, True, False, True]
    result = mcnemar(best, other)
    assert (result["only_best_correct"], result["only_other_correct"]) == (3, 1)
    assert result["p_value"] == pytest.approx(exact_two_sided(3, 1))
    assert mcnemar([True, False], [True, False]) == {"only_best_correct": 0, "only_other_correct": 0,
                                                      "p_value": 1.0, "method": "no discordant documents"}


def test_holm_adjusts_step_down_and_stays_monotone():
    from steps.core.compare import holm

    # sorted 0.01, 0.02, 0.04 over 3 pairs: 3×0.01, max(0.03, 2×0.02), max(0.04, 1×0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_every_pair_of_models_is_compared_with_the_correction_stated():
    from steps.core.compare import pairwise

    correct = {"a": [True] * 30 + [False] * 5, "b": [False] * 30 + [True] * 5, "c": [True] * 35}
    tests = pairwise(correct, ["c", "a", "b"])
    assert [(t["a"], t["b"]) for t in tests] == [("c", "a"), ("c", "b"), ("a", "b")]
    ab = tests[2]
    assert (ab["only_a_correct"], ab["only_b_correct"]) == (30, 5)
    assert ab["p_value"] == mcnemar_p(30, 5)["p_value"] and ab["p_holm"] >= ab["p_value"]
    assert all(t["p_holm"] <= 1 for t in tests)


def test_flags_name_labels_a_model_never_predicts_or_scores_zero_on():
    from steps.core.compare import flags

    names = ["x", "y", "z"]

    def result(true, predicted):
        from steps.evaluate import per_label

        return {"true": true, "predicted": predicted, "per_label": per_label(true, predicted, names)}

    true = [0, 0, 1, 1, 2, 2]
    out = flags({"one-class": result(true, [0] * 6), "fine": result(true, true),
                 "no-z": result(true, [0, 0, 1, 1, 1, 0])}, names)
    assert "one-class predicts one class for every document (x)" in out
    assert "no-z never predicts z (2 test documents)" in out and "one-class never predicts z (2 test documents)" in out
    assert not any(line.startswith("fine") for line in out)
    assert not any("fails in every model" in line for line in out)  # `fine` gets z right
    every = flags({"m1": result(true, [0, 0, 1, 1, 0, 1]), "m2": result(true, [0, 0, 1, 1, 1, 1])}, names)
    assert every[0] == "z fails in every model (never predicted or F1 = 0): check its labels and its data"
    assert flags({"fine": result(true, true)}, names) == []
