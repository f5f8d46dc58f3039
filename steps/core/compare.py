"""Comparing models evaluated on the same test documents: McNemar's test for every pair of models, Holm's
correction over the pairs, and the flags a reader must see first (a label a model never predicts or scores
F1 = 0 on, a model that predicts one class)."""

from __future__ import annotations

EXACT_BELOW = 25  # discordant pairs: under this the exact binomial form, from it the chi-square form


def mcnemar(correct_a, correct_b) -> dict:
    """McNemar's test on the paired per-document outcomes of two models (two-sided): the exact binomial form
    for fewer than 25 discordant documents, the chi-square form with continuity correction from 25 on."""
    import numpy as np

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    return {"only_best_correct": only_a, "only_other_correct": only_b, **mcnemar_p(only_a, only_b)}


def mcnemar_p(only_a: int, only_b: int) -> dict:
    from scipy.stats import binomtest, chi2

    n = only_a + only_b
    if n == 0:
        return {"p_value": 1.0, "method": "no discordant documents"}
    if n < EXACT_BELOW:
        return {"p_value": float(binomtest(only_a, n, 0.5).pvalue), "method": "exact binomial"}
    statistic = (abs(only_a - only_b) - 1) ** 2 / n
    return {"p_value": float(chi2.sf(statistic, 1)), "method": "chi-square, continuity corrected",
            "statistic": statistic}


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def pairwise(correct: dict[str, list[bool]], ranked: list[str]) -> list[dict]:
    """McNemar for every pair of models (the better-ranked first), with Holm's correction over all pairs."""
    pairs = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1:]]
    tests = []
    for a, b in pairs:
        result = mcnemar(correct[a], correct[b])
        tests.append({"a": a, "b": b, "only_a_correct": result.pop("only_best_correct"),
                      "only_b_correct": result.pop("only_other_correct"), **result})
    for test, adjusted in zip(tests, holm([t["p_value"] for t in tests]), strict=True):
        test["p_holm"] = adjusted
    return tests


def flags(results: dict[str, dict], names: list[str]) -> list[str]:
    """What is wrong with a model in a way its averages hide, a line each; labels that fail in every model
    first."""
    failing: dict[str, list[str]] = {}
    lines = []
    for model, result in results.items():
        present = {names[t] for t in result["true"]}
        predicted = {names[p] for p in result["predicted"]}
        if len(predicted) == 1 and len(present) > 1:
            lines.append(f"{model} predicts one class for every document ({next(iter(predicted))})")
        for label in sorted(present):
            if label not in predicted:
                failing.setdefault(label, []).append(model)
                lines.append(f"{model} never predicts {label} ({result['per_label'][label]['support']} test documents)")
            elif result["per_label"][label]["f1"] == 0:
                failing.setdefault(label, []).append(model)
                lines.append(f"{model} scores F1 = 0 on {label}")
    for model, result in results.items():
        t = result.get("training") or {}
        if t.get("steps_run") and t.get("steps_planned") and t["steps_run"] < t["steps_planned"]:
            lines.append(f"{model} stopped at max_steps {t['max_steps']}: {t['steps_run']:,} of "
                         f"{t['steps_planned']:,} planned steps ran")
    every = [f"{label} fails in every model (never predicted or F1 = 0): check its labels and its data"
             for label, models in sorted(failing.items()) if len(models) == len(results) > 1]
    return every + lines
