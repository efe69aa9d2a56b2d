"""Rule-based repairs of library candidates from what execution, checks or fits reported.

Each rule recognises one failure by its structured kind and the message's fixed wording
(the checks and the fitter word their findings consistently), edits the spec, and says
what it did. No rule guesses: when none recognises the failure the answer is None and the
search loop stops spending effort on that node.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from agent.core import Feedback
from agent.library.spec import ModelSpec, ParamSpec, PriorSpec, RateSpec, rename

__all__ = ["repair_spec"]

Rule = Callable[[ModelSpec, Feedback], tuple[ModelSpec, str] | None]
_NOISE_PARAM = re.compile(r"^(phi|sd)_")


def _failed(feedback: Feedback) -> list[Mapping[str, Any]]:
    return [c for c in feedback.checks
            if not c.get("passed", False) and c.get("severity", "error") == "error"]


def _drop_unused(spec: ModelSpec, feedback: Feedback) -> tuple[ModelSpec, str] | None:
    """A parameter, control or neural term nothing reads: remove it (and its roles)."""
    names: set[str] = set()
    for c in _failed(feedback):
        m = re.search(r"(?:parameter|control|neural term) (\w+) is declared but never used",
                      c.get("message", ""))
        if m:
            names.add(m.group(1))
    if not names:
        return None
    out = replace(spec, params=tuple(p for p in spec.params if p.name not in names),
                  controls=tuple(c for c in spec.controls if c.name not in names),
                  neurals=tuple(n for n in spec.neurals if n.name not in names),
                  roles=tuple((k, v) for k, v in spec.roles if v not in names))
    return out, f"removed unused {', '.join(sorted(names))}"


def _nonnegative_outflows(spec: ModelSpec, feedback: Feedback) -> tuple[ModelSpec, str] | None:
    """An outflow that does not vanish at X = 0: multiply it by X / (X + eps), so it is
    proportional to its state near zero and unchanged where the state is not small."""
    fixed = []
    out = spec
    for c in _failed(feedback):
        if c.get("name") != "non_negativity":
            continue
        msg = c.get("message", "")
        m = re.search(r"flow '(\w+)' out of (\w+)", msg)
        if m and (f := out.flow(m.group(1))) is not None:
            x = m.group(2)
            out = out.replace_flow(f.name, replace(f, rate=f"({f.rate}) * {x} / ({x} + 1e-9)"))
            fixed.append(f"flow {f.name}")
            continue
        m = re.search(r"d(\w+)/dt has term", msg)
        if m:
            x = m.group(1)
            out = replace(out, rates=tuple(
                RateSpec(r.state, f"({r.expr}) * {x} / ({x} + 1e-9)") if r.state == x else r
                for r in out.rates))
            fixed.append(f"rate of {x}")
    if not fixed:
        return None
    return out, f"made {', '.join(fixed)} vanish at zero (non-negativity)"


def _missing_inits(spec: ModelSpec, feedback: Feedback) -> tuple[ModelSpec, str] | None:
    states = []
    for c in _failed(feedback):
        m = re.search(r"state (\w+) has no initial condition", c.get("message", ""))
        if m and m.group(1) in spec.state_names:
            states.append(m.group(1))
    if not states:
        return None
    return (replace(spec, inits=(*spec.inits, *((s, "0") for s in states))),
            f"declared initial condition 0 for {', '.join(states)}")


def _name_clash(spec: ModelSpec, feedback: Feedback) -> tuple[ModelSpec, str] | None:
    """The module failed because a name was declared twice: rename the motif's own one."""
    message = (feedback.error.message if feedback.error else "") or feedback.message
    m = re.search(r"name '?(\w+)'? is already (?:declared|used)", message)
    if not m:
        return None
    old = m.group(1)
    new = spec.fresh(f"{old}_m")
    return rename(spec, old, new), f"renamed {old} to {new} (name clash)"


def _noise_support(spec: ModelSpec, feedback: Feedback) -> tuple[ModelSpec, str] | None:
    """Data a noise model cannot produce (zeros under log-normal noise, negative counts):
    switch that observable to Gaussian noise with a fitted sigma."""
    m = re.search(r"observable '(\w+)' has (?:log-normal|count) noise", feedback.message)
    if not m:
        return None
    name = m.group(1)
    sd = spec.fresh(f"sd_{name}")
    observes = tuple(replace(o, noise=f"Gaussian({sd})") if o.name == name else o
                     for o in spec.observes)
    old = next((o.noise for o in spec.observes if o.name == name), "")
    params = tuple(p for p in spec.params if p.name not in re.findall(r"\w+", old))
    scale = _data_scale(feedback, name)
    params = (*params, ParamSpec(sd, PriorSpec("LogUniform", (scale * 1e-3, scale * 3)),
                                 f"measurement noise of {name}"))
    return replace(spec, observes=observes, params=params), f"Gaussian noise for {name}"


def _data_scale(feedback: Feedback, name: str) -> float:
    res = (feedback.residuals or {}).get(name, {})
    for key in ("scale", "mean_abs", "rmse", "std"):
        value = res.get(key) if isinstance(res, Mapping) else None
        if isinstance(value, int | float) and value > 0:
            return float(value)
    return 1.0


def _narrow_priors(spec: ModelSpec, feedback: Feedback) -> tuple[ModelSpec, str] | None:
    """A fit whose starts diverged: halve every dynamic parameter's prior range (in log
    space) around its centre, so multi-start stays where the simulation is well behaved."""
    text = feedback.message.lower()
    if not any(w in text for w in ("non-finite", "diverge", "nan", "overflow", "blew up",
                                   "blow-up", "unstable", "stiff", "step size")):
        return None
    params = tuple(p if _NOISE_PARAM.match(p.name) else replace(p, prior=p.prior.narrowed(0.5))
                   for p in spec.params)
    if params == spec.params:
        return None
    return replace(spec, params=params), "narrowed the priors of the dynamic parameters by half"


_RULES: dict[str, tuple[Rule, ...]] = {
    "checks": (_drop_unused, _nonnegative_outflows, _missing_inits),
    "error": (_name_clash,),
    "fit": (_noise_support, _narrow_priors),
}


def repair_spec(spec: ModelSpec, feedback: Feedback) -> tuple[ModelSpec, str] | None:
    """The first rule for this kind of failure that applies, or None."""
    for rule in _RULES.get(feedback.kind, ()):
        result = rule(spec, feedback)
        if result is not None:
            return result
    return None
