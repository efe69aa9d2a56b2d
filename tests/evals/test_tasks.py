"""The task format: malformed documents are refused with the field named, and the noisy
observations really follow the noise each task declares.

The noise checks are independent of the sampler's code: they compare sample moments
over many draws with the textbook moments of the declared distribution.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from evals.suite import all_tasks
from evals.task import BenchTask, Counterfactual, TaskError, task_from_json
from mechanistic.interventions import Transfer

TASKS = all_tasks()


def _doc(name: str = "epi-seir-town-partial") -> dict[str, Any]:
    return json.loads(TASKS[name].to_json())


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.pop(key)


_CF0 = ("counterfactuals", 0, "interventions", 0)
MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing field", _delete("description"), "my.json: description: missing"),
    ("unknown field", _set(("colour",), "red"), "my.json: colour: unknown field"),
    ("bad format", _set(("format",), "other/1"), "format: expected 'mmw.task/1'"),
    ("bad name", _set(("name",), "SEIR Town"), "name: 'SEIR Town' is not a valid name"),
    ("bad domain", _set(("domain",), "astronomy"), "domain: must be one of epidemiology"),
    ("bad difficulty", _set(("difficulty",), 3), "difficulty: expected a non-empty string"),
    ("bad number", _set(("train_until",), "abc"), "train_until: expected a number, got 'abc'"),
    ("bool is no number", _set(("validate_until",), True), "validate_until: expected a number"),
    ("time not a number", _set(("times", 3), None), "times[3]: expected a number, got None"),
    ("times decrease", _set(("times", 3), 1.0), "times: must be strictly increasing"),
    ("window outside times", _set(("validate_until",), 500.0),
     "validate_until: 500 must lie after train_until=45"),
    ("train after validate", _set(("train_until",), 70.0), "validate_until: 60 must lie after"),
    ("unknown observable", _set(("observed",), ["cases"]),
     "observed[0]: 'cases' is not an observable of the truth"),
    ("unknown hidden state", _set(("hidden",), ["S"]), "hidden[0]: 'S' is not a state"),
    ("unknown parameter", _set(("truth_params", "beta"), 0.3),
     "truth_params.beta: 'beta' is not a parameter"),
    ("missing parameter", lambda d: d["truth_params"].pop("disp"),
     "truth_params: no value for truth parameter(s) ['disp']"),
    ("parameter outside prior", _set(("truth_params", "q_report"), 1.5),
     "truth_params.q_report: 1.5 lies outside its prior"),
    ("parameter not a number", _set(("truth_params", "lat0"), "20"),
     "truth_params.lat0: expected a number, got '20'"),
    ("intervention start", _set((*_CF0, "start"), "abc"),
     "my.json: counterfactuals[0].interventions[0].start: expected a number, got 'abc'"),
    ("intervention target", _set((*_CF0, "source"), "nobody"),
     "counterfactuals[0].interventions[0].source: 'nobody' is not a state"),
    ("intervention kind", _set((*_CF0, "kind"), "teleport"),
     "counterfactuals[0].interventions[0].kind: must be one of set, scale, dose, transfer"),
    ("intervention field", _set((*_CF0, "speed"), 3), "interventions[0].speed: unknown field"),
    ("intervention window", _set((*_CF0, "end"), 10.0),
     "counterfactuals[0].interventions[0].end: transfer intervention needs start < end"),
    ("no interventions", _set(("counterfactuals", 0, "interventions"), []),
     "counterfactuals[0].interventions: a counterfactual needs at least one intervention"),
    ("empty question", _set(("counterfactuals", 0, "question"), " "),
     "counterfactuals[0].question: expected a non-empty string"),
    ("scored outside", _set(("counterfactuals", 0, "scored_from"), 999.0),
     "counterfactuals[0].scored_from: 999 is outside the observation times"),
    ("no counterfactual", _set(("counterfactuals",), []),
     "counterfactuals: a simulated task needs at least one what-if question"),
    ("condition target", _set(("conditions",), [{"kind": "dose", "state": "gut",
                                                 "amount": 5, "times": [1]}]),
     "conditions[0].state: 'gut' is not a state"),
    ("dose times", _set(("conditions",), [{"kind": "dose", "state": "sus", "amount": 5,
                                           "times": [1, "x"]}]),
     "conditions[0].times[1]: expected a number, got 'x'"),
    ("recover unknown param", _set(("recover", "transmission_rate"), "beta"),
     "recover.transmission_rate: 'beta' is not a parameter of the truth"),
    ("recover bad role", _set(("recover", "Bad Role"), "disp"), "recover.Bad Role"),
    ("bad model JSON", _set(("truth_model", "flows", 0, "rate"), {"op": "frobnicate"}),
     "my.json: truth_model:"),
    ("model format", _set(("truth_model", "format"), "nope"), "truth_model: model JSON has "
                                                              "format 'nope'"),
    ("wrong model lacks column", lambda d: d["wrong_model"].update(observables=[]),
     "wrong_model: must observe every observed column"),
    ("real data on a simulated task", _set(("data_path",), "examples/data/hare_lynx.csv"),
     "data_path: a simulated task has no data file"),
    ("negative seed", _set(("noise_seed",), -1), "noise_seed: expected a non-negative integer"),
]


@pytest.mark.parametrize(("edit", "message"), [(e, m) for _, e, m in MALFORMED],
                         ids=[c for c, _, _ in MALFORMED])
def test_malformed_task_names_the_field(edit: Callable[[dict[str, Any]], None],
                                        message: str) -> None:
    doc = _doc()
    edit(doc)
    with pytest.raises(TaskError) as info:
        task_from_json(json.dumps(doc), "my.json")
    assert message in str(info.value)
    assert str(info.value).startswith("my.json: ")


def test_real_task_rules() -> None:
    doc = _doc("eco-hare-lynx-real")
    bad = copy.deepcopy(doc)
    bad["counterfactuals"] = _doc()["counterfactuals"]
    with pytest.raises(TaskError, match="counterfactuals: a real-data task is forecast-only"):
        task_from_json(bad, "hl.json")
    bad = copy.deepcopy(doc)
    bad["observed"] = ["Hare", "Wolf"]
    with pytest.raises(TaskError, match=r"observed\[1\]: 'Wolf' is not a column"):
        task_from_json(bad, "hl.json")
    bad = copy.deepcopy(doc)
    bad["data_path"] = "examples/data/no_such.csv"
    with pytest.raises(TaskError, match=r"data_path: .*no such file"):
        task_from_json(bad, "hl.json")
    bad = copy.deepcopy(doc)
    bad["variant"] = "full"
    with pytest.raises(TaskError, match="truth_model: only a real-data task"):
        task_from_json(bad, "hl.json")


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(TaskError, match=r"t.json: \(document\): not valid JSON"):
        task_from_json("{nope", "t.json")
    with pytest.raises(TaskError, match=r"t.json: \(document\): expected a JSON object"):
        task_from_json("[1, 2]", "t.json")


def test_dict_input_is_not_mutated() -> None:
    doc = _doc()
    before = copy.deepcopy(doc)
    assert task_from_json(doc) == TASKS["epi-seir-town-partial"]
    assert doc == before


def test_direct_construction_is_validated() -> None:
    task = TASKS["epi-seir-town-partial"]
    fields = {f: getattr(task, f) for f in task.__dataclass_fields__}
    with pytest.raises(TaskError, match="task 'epi-seir-town-partial': observed"):
        BenchTask(**{**fields, "observed": ("cases",)})
    with pytest.raises(TaskError, match=r"counterfactuals\[0\].interventions\[0\].source"):
        BenchTask(**{**fields, "counterfactuals": (
            Counterfactual("Vaccinate.", (Transfer("S", "rem", 0.1),), 10.0),)})
    with pytest.raises(TaskError, match=r"counterfactual: counterfactual\.interventions"):
        Counterfactual("What if?", (), 0.0)
    with pytest.raises(TaskError, match="wrong_model: expected a Model"):
        BenchTask(**{**fields, "wrong_model": "SIR"})
    # lists are accepted and frozen into tuples; the times array is read-only
    again = BenchTask(**{**fields, "tags": list(task.tags), "times": list(task.times)})
    assert again == task and isinstance(again.tags, tuple)
    with pytest.raises(ValueError):
        again.times[0] = 5.0


def test_task_pickles_without_its_caches() -> None:
    import pickle

    task = TASKS["pk-oral-partial"]
    task.truth_mean(task.times)
    again = pickle.loads(pickle.dumps(task))
    assert again == task
    np.testing.assert_allclose(again.truth_mean(task.times)["conc_mg_per_l"],
                               task.truth_mean(task.times)["conc_mg_per_l"])


# ----------------------------------------------------------------------- noise
def test_negative_binomial_moments_match_the_declared_dispersion() -> None:
    """var = f + f^2/phi: with phi = 30 and f = 50, the variance is 133.3, well apart from
    Poisson (50) and from a wrong phi; checked over 40,000 draws."""
    task = TASKS["epi-seir-town-partial"]
    phi = task.truth_params["disp"]
    rng = np.random.default_rng(0)
    for f in (3.0, 50.0, 400.0):
        y = task.sample_noisy({"reported_cases": np.full(40_000, f)}, rng)["reported_cases"]
        assert np.all(y == np.round(y)) and y.min() >= 0
        assert abs(y.mean() - f) < 4 * np.sqrt((f + f * f / phi) / y.size)
        var = f + f * f / phi
        assert abs(y.var() / var - 1) < 0.05, (f, y.var(), var)


def test_lognormal_noise_is_multiplicative_with_declared_sigma() -> None:
    task = TASKS["onc-lung-chemoradio-full"]
    rng = np.random.default_rng(1)
    mean = {"tumour_volume": np.full(20_000, 30.0), "drug_conc": np.full(20_000, 0.5)}
    y = task.sample_noisy(mean, rng)
    for name, sd in (("tumour_volume", "sd_volume"), ("drug_conc", "sd_conc")):
        z = np.log(y[name] / mean[name])
        assert abs(z.mean()) < 0.01
        assert abs(z.std() / task.truth_params[sd] - 1) < 0.03


def test_observations_across_seeds_scatter_around_the_truth() -> None:
    """Many seeds of the shipped observations average back to the noise-free truth."""
    task = TASKS["pk-oral-partial"]
    truth = task.truth_mean(task.times)["conc_mg_per_l"]
    draws = np.array([task.observations(s).values["conc_mg_per_l"] for s in range(200)])
    ok = truth > 0
    ratio = np.log(draws[:, ok] / truth[ok])
    assert abs(ratio.mean()) < 0.02
    assert abs(ratio.std() / task.truth_params["cv"] - 1) < 0.05
    assert np.isnan(draws[:, ~ok]).all()


def test_real_task_has_no_noise_model() -> None:
    task = TASKS["eco-hare-lynx-real"]
    with pytest.raises(TaskError, match="truth_model"):
        task.truth_mean(task.times)
    with pytest.raises(TaskError, match="no declared noise"):
        task.sample_noisy({"Hare": np.ones(3)}, np.random.default_rng(0))
