"""Smoke tests: each SGNN benchmark runs end to end on a tiny budget and prints its JSON.

The figures themselves come from the full runs (see each benchmark's docstring); here
only that the scripts work and report every field, so a refactor cannot break them
silently. Seconds each.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import sgnn_model_selection, sgnn_r0, sgnn_speed


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def test_model_selection_benchmark_smoke(capsys) -> None:
    sgnn_model_selection.main(["--json", "--simulations", "256", "--epochs", "1",
                               "--series", "4", "--mle-steps", "3", "--mle-starts", "2",
                               "--mle-screen", "4", "--mle-screen-steps", "2",
                               "--d-model", "16", "--n-layers", "1", "--held-out", "32",
                               "--calibration-n", "64", "--batch-size", "64"])
    report = _json(capsys)
    assert report["benchmark"] == "sgnn_model_selection"
    assert report["settings"]["simulations"] == 256 and report["held_out_series"] == 4
    assert 0 <= report["sgnn_misclassification"] <= 1
    assert 0 <= report["aic_misclassification"] <= 1
    assert set(report["mle_starts_agree_fraction"]) == {"SIR", "SEIR", "SIRS"}
    assert report["predict_one_series_ms"] > 0 and len(report["load_average"]) == 3


def test_r0_benchmark_smoke(capsys) -> None:
    sgnn_r0.main(["--json", "--simulations", "256", "--epochs", "1", "--series", "4",
                  "--mle-steps", "3", "--mle-starts", "2"])
    report = _json(capsys)
    assert report["benchmark"] == "sgnn_r0" and report["held_out_series"] == 4
    assert report["r0_mse_sgnn"] >= 0 and report["r0_mse_mle"] >= 0


def test_speed_benchmark_smoke(capsys) -> None:
    sgnn_speed.main(["--json", "--simulations", "256", "--corpus-blocks", "1",
                     "--block", "128", "--compare-simulations", "128", "--predict-calls", "5",
                     "--d-model", "16", "--n-layers", "1", "--held-out", "32"])
    report = _json(capsys)
    assert report["benchmark"] == "sgnn_speed"
    assert report["corpus_samples_per_second"] > 0
    assert report["training"]["simulations"] == 256 and report["training"]["goal_met"] is None
    assert set(report["threads"]) == {"1", "2"}
    assert report["predict_ms"]["median"] > 0
