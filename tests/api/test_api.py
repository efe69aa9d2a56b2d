"""``import mmw``: the model language and the workbench's calls, without side effects."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

import mmw


def test_import_mmw_loads_no_torch_and_no_format_library():
    code = ("import sys, mmw; heavy = [m for m in ('torch', 'libsbml', 'antimony', 'petab', "
            "'roadrunner') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_a_model_renders_its_equations_and_parameters_escaped():
    m = mmw.Model("decay <b>", time_unit="day")
    x = m.state("x")
    k = m.param("k", mmw.LogUniform(0.1, 1.0), doc="<script>")
    m.flow(x, None, k * x)
    m.init(x=10)
    m.observe("y", x, noise=mmw.Gaussian(0.5))
    html = m._repr_html_()
    assert "dx/dt = -k*x" in html and "x(0) = 10" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and "decay &lt;b&gt;" in html


def test_fit_recovers_an_analytic_decay_from_a_dataframe():
    t = np.arange(0.0, 20.0)
    frame = pd.DataFrame({"day": t, "y": 10.0 * np.exp(-0.3 * t)})
    m = mmw.Model("decay", time_unit="day")
    x = m.state("x")
    k = m.param("k", mmw.LogUniform(0.01, 2.0))
    m.flow(x, None, k * x)
    m.init(x=10)
    m.observe("y", x, noise=mmw.LogNormalNoise(m.param("s", mmw.LogUniform(1e-4, 1.0))))
    fit = mmw.fit(m, frame, train_until=15, starts=2, steps=60)
    assert abs(fit.params["k"] - 0.3) < 1e-3
    table = fit.table()
    assert list(table.columns) == ["day", "y", "y_fit", "y_residual"]
    assert np.allclose(table["y_fit"], 10.0 * np.exp(-fit.params["k"] * t), rtol=1e-3)
    assert "fitted parameters" in fit._repr_html_()


def test_sbml_round_trip_through_the_api(tmp_path):
    m = mmw.Model("growth")
    n = m.state("n")
    r = m.param("r", mmw.Uniform(0.1, 1.0))
    m.rate(n, r * n * (1 - n / 100))
    m.init(n=1)
    m.observe("count", n, noise=mmw.Poisson())
    text = mmw.to_sbml(m, tmp_path / "g.xml", params={"r": 0.4})
    assert "<rateRule" in text
    back = mmw.from_sbml(tmp_path / "g.xml")
    assert back.values == {"r": 0.4} and back.model.params_["r"].prior == mmw.Uniform(0.1, 1.0)
    assert "model *growth" in mmw.to_antimony(back.model)
