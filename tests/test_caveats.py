"""Compare's caveats and its side-by-side table follow the run's metrics and the page's
operating point."""
from __future__ import annotations

from core.evaluate.caveats import (
    baseline_served_views,
    comparison_caveats,
    fallback_sentence,
    presence_beats_grids,
)
from core.grid import VIEWS


def _block(bal: float, acc: float | None = None) -> dict:
    return {"balanced_accuracy": {"value": bal, "ci_low": bal - 0.1, "ci_high": bal + 0.1},
            "accuracy": {"value": acc if acc is not None else bal, "ci_low": None,
                         "ci_high": None}}


def _result(presence: float, at_half: tuple[float, float], tuned: tuple[float, float],
            per_cell: dict | None = None) -> dict:
    return {"baseline": _block(at_half[0]), "roi_aware": _block(at_half[1]),
            "tuned": {"baseline": _block(tuned[0]), "roi_aware": _block(tuned[1])},
            "roi_presence_only": _block(presence), "per_cell": per_cell or {},
            "mcnemar": {"at_0.5": {"p": 0.01}, "at_tuned": {"p": 0.97}}}


def test_presence_beating_both_grids_is_said_at_the_page_s_operating_point():
    result = _result(0.80, at_half=(0.55, 0.70), tuned=(0.60, 0.85))
    text = presence_beats_grids(result, tuned=False)
    assert text and "0.80" in text and "baseline 0.55" in text and "ROI-aware 0.70" in text
    assert presence_beats_grids(result, tuned=True) is None  # ROI-aware 0.85 beats it there
    assert presence_beats_grids(_result(0.80, (0.80, 0.5), (0.8, 0.5)), False) is None  # a tie
    assert presence_beats_grids({"baseline": _block(0.5)}, False) is None  # nothing to compare


def test_views_served_by_the_baseline_are_named():
    every = {"roi_aware": {**{f"all-{v}": {"n_fallback": 3} for v in VIEWS},
                           **{f"roi-{v}": {} for v in VIEWS}}}
    assert baseline_served_views({"per_cell": every}) == list(VIEWS)
    assert "Every without-ROI cell had no model" in fallback_sentence({"per_cell": every})
    some = {"roi_aware": {"noroi-RCC": {}, "noroi-LCC": {}, "all-RMLO": {}, "all-LMLO": {},
                          "roi-RCC": {}}}
    text = fallback_sentence({"per_cell": some})
    assert text.startswith("The without-ROI cell of RMLO and LMLO had no model")
    full = {"roi_aware": {f"{k}-{v}": {} for k in ("noroi", "roi") for v in VIEWS}}
    assert fallback_sentence({"per_cell": full}) is None


def test_every_caveat_that_holds_is_listed():
    every = {"roi_aware": {f"all-{v}": {} for v in VIEWS}}
    assert len(comparison_caveats(_result(0.9, (0.5, 0.6), (0.5, 0.6), every), False)) == 2
    assert comparison_caveats(_result(0.5, (0.6, 0.7), (0.6, 0.7)), True) == []


def test_the_side_by_side_table_follows_the_operating_point():
    from ui.metrics_view import side_by_side, with_ci

    a = {**_result(0.8, (0.55, 0.70), (0.60, 0.85)), "run": {"name": "a"}}
    b = {**_result(0.8, (0.50, 0.52), (0.65, 0.66)), "run": {"name": "b"}}
    for tuned, key in ((False, None), (True, "tuned")):
        table = side_by_side({"a": a, "b": b}, tuned)
        assert list(table.columns) == ["a", "b"]
        for name, result in (("a", a), ("b", b)):
            block = result[key]["roi_aware"] if key else result["roi_aware"]
            assert table.loc["ROI-aware bal. acc", name] == with_ci(block["balanced_accuracy"])
        assert table.loc["McNemar p", "a"] == ("0.970" if tuned else "0.010")
