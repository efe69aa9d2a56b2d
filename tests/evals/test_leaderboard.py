"""Leaderboard aggregation against hand-computed means; intervals deterministic and sane."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evals.leaderboard import aggregate, bootstrap, write_leaderboard

MANIFEST = {"agents": ["oracle", "neural"], "seeds": [0, 1], "budget": {"max_seconds": 5},
            "tasks": {"epi-a": {"domain": "epidemiology", "difficulty": "easy",
                                "variant": "full"},
                      "eco-b": {"domain": "ecology", "difficulty": "hard",
                                "variant": "partial"}}}


def _result(task: str, agent: str, seed: int, status: str = "ok", wall: float = 1.0,
            **metrics: Any) -> dict[str, Any]:
    base = {"valid": status == "ok", "wall_s": wall} if status in ("ok", "invalid") else {
        "valid": False}
    return {"key": f"{task}__{agent}__s{seed}", "task": task, "agent": agent, "seed": seed,
            "status": status, "reason": "" if status == "ok" else f"{status} happened",
            "wall_s": wall + 0.5, "metrics": {**base, **metrics}, "series": None}


def _results() -> list[dict[str, Any]]:
    return [
        _result("epi-a", "oracle", 0, forecast_skill=0.5, cf_error=0.1),
        _result("epi-a", "oracle", 1, forecast_skill=0.7, cf_error=0.3),
        _result("eco-b", "oracle", 0, forecast_skill=0.9, cf_error=None),
        _result("eco-b", "oracle", 1, "timeout", wall=99.0),
        _result("epi-a", "neural", 0, forecast_skill=1.5, cf_error=2.0),
        _result("epi-a", "neural", 1, "invalid"),
        _result("eco-b", "neural", 0, forecast_skill=2.5),
        _result("eco-b", "neural", 1, "error"),
    ]


def test_means_counts_and_intervals_match_hand_computation() -> None:
    scores = aggregate(_results(), MANIFEST)
    oracle = scores["overall"]["oracle"]
    assert oracle["jobs"] == 4
    assert oracle["status"] == {"ok": 3, "invalid": 0, "error": 0, "timeout": 1}
    skill = oracle["metrics"]["forecast_skill"]
    assert skill["mean"] == pytest.approx((0.5 + 0.7 + 0.9) / 3) and skill["n"] == 3
    assert skill["lo"] <= skill["mean"] <= skill["hi"]
    assert skill["lo"] >= 0.5 and skill["hi"] <= 0.9
    assert oracle["metrics"]["cf_error"]["mean"] == pytest.approx(0.2)
    assert oracle["metrics"]["valid"]["mean"] == pytest.approx(0.75)
    assert oracle["metrics"]["param_error"] is None
    neural = scores["overall"]["neural"]
    assert neural["metrics"]["valid"]["mean"] == pytest.approx(0.5)
    assert neural["metrics"]["forecast_skill"]["mean"] == pytest.approx(2.0)
    assert list(scores["overall"]) == ["oracle", "neural"]  # the manifest's order
    epi = scores["by_domain"]["epidemiology"]["oracle"]["metrics"]["forecast_skill"]
    assert epi["mean"] == pytest.approx(0.6) and epi["n"] == 2
    one = scores["by_task"]["eco-b"]["oracle"]["metrics"]["forecast_skill"]
    assert one == {"mean": 0.9, "lo": 0.9, "hi": 0.9, "median": 0.9, "n": 1}


def test_bootstrap_is_deterministic_and_close_to_the_normal_interval() -> None:
    values = list(np.random.default_rng(1).normal(3.0, 1.0, size=40))
    a, b = bootstrap(values, seed=7), bootstrap(values, seed=7)
    assert a == b
    assert a["lo"] < a["mean"] < a["hi"]
    half = 1.96 * np.std(values) / np.sqrt(len(values))
    assert (a["hi"] - a["lo"]) / 2 == pytest.approx(half, rel=0.2)
    assert bootstrap([], seed=1) is None


def test_leaderboard_is_byte_identical_for_the_same_results_and_keeps_timing_apart(
        tmp_path: Path) -> None:
    first, second = _results(), _results()
    random.Random(3).shuffle(second)
    for r in second:  # another executor: other wall times and reasons, same scores
        r["wall_s"] *= 3
        r["metrics"]["wall_s"] = (r["metrics"].get("wall_s") or 0) * 3
        if r["status"] == "timeout":
            r["reason"] = "killed after 1234 s"
    files_a = write_leaderboard(tmp_path / "a", MANIFEST, first)
    files_b = write_leaderboard(tmp_path / "b", MANIFEST, second)
    board = files_a["leaderboard"].read_text()
    assert board == files_b["leaderboard"].read_text()
    assert files_a["timing"].read_text() != files_b["timing"].read_text()
    a = json.loads(files_a["results"].read_text())
    b = json.loads(files_b["results"].read_text())
    assert a["scores"] == b["scores"] and a["timing"] != b["timing"]
    assert "wall" not in board.split("Wall times are in timing.md.")[1]
    assert "| oracle | 4 | 3 | 0 | 0 | 1 | 75% [" in board
    assert "### eco-b (ecology, hard, partial)" in board
    assert "timeout happened" in files_a["timing"].read_text()
    assert len(a["jobs"]) == 8 and "series" not in a["jobs"][0]


def test_no_results_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no job results"):
        write_leaderboard(tmp_path, MANIFEST)


EVIL = '</script><img src=x onerror="alert(1)">$x_$'


def _series(shift: float, question: str) -> dict[str, Any]:
    t = [float(i) for i in range(20)]
    truth = [10.0 + i for i in range(20)]
    return {"t": t, "observed": {"cases": [v + 0.5 if i != 3 else None
                                           for i, v in enumerate(truth)]},
            "truth": {"cases": truth}, "forecast": {"cases": [v + shift for v in truth]},
            "counterfactuals": [{"question": question, "from": 12.0,
                                 "truth": {"cases": [v / 2 for v in truth]},
                                 "agent": {"cases": [v / 2 + shift for v in truth]},
                                 "answered": shift < 1}],
            "windows": {"train_until": 10.0, "validate_until": 15.0}}


def test_report_is_self_contained_escaped_and_has_the_plots(tmp_path: Path) -> None:
    from evals.report import write_report
    from evals.runner import write_json, write_result

    manifest = {"agents": ["oracle", EVIL], "seeds": [0], "budget": {"max_seconds": 5},
                "tasks": {EVIL: {"domain": EVIL, "description": EVIL, "observed": ["cases"]}}}
    write_json(tmp_path / "bench.json", manifest)
    for agent, shift in (("oracle", 0.2), (EVIL, 3.0)):
        result = _result(EVIL, agent, 0, forecast_skill=shift, cf_error=shift)
        result["key"] = f"evil__{'o' if agent == 'oracle' else 'e'}__s0"
        result["series"] = _series(shift, EVIL)
        write_result(tmp_path, result)
    failed = _result(EVIL, "oracle", 1, "error")
    failed.update(key="evil__o__s1", reason=EVIL)
    write_result(tmp_path, failed)
    path = write_report(tmp_path)
    html = path.read_text()
    assert EVIL not in html and "<script" not in html.lower()
    assert "onerror=" not in html.replace("onerror=&quot;", "")
    assert "&lt;/script&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert html.count("data:image/png;base64,") == 2  # the forecast and the counterfactual
    assert 'http-equiv="Content-Security-Policy"' in html
    assert "src=\"http" not in html and "href=\"http" not in html
    assert (tmp_path / "leaderboard.md").is_file() and (tmp_path / "results.json").is_file()
