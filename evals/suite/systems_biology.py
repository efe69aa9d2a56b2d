"""Systems biology: a negatively autoregulated gene whose transcription an inducer drives.

The protein represses its own gene (Hill repression, n = 2); the inducer concentration the
experimenter adds scales the promoter's maximal activity. mRNA is counted by smFISH (about
10% error) and the protein by fluorescence (5%).
"""

from __future__ import annotations

import numpy as np

from evals.task import BenchTask, Counterfactual, TaskInput
from mechanistic import Fixed, LogNormalNoise, LogUniform, Model
from mechanistic.interventions import SetValue

__all__ = ["tasks"]


def inducer_schedule(times: np.ndarray) -> np.ndarray:
    """Inducer level (fraction of saturating) as the experimenter changed it."""
    return np.select([times < 24, times < 48, times < 72], [1.0, 0.3, 1.0], 0.5)


def _autorepressor(full: bool, hill: bool = True) -> Model:
    m = Model("autorepressed gene with an inducer", time_unit="hour")
    mrna, prot = m.states("mrna protein")
    u = m.control("inducer", default=1.0, doc="inducer level (fraction of saturating)")
    alpha = m.param("alpha", LogUniform(1.0, 200.0), doc="maximal transcription", unit="1/hour")
    d_m = m.param("d_mrna", LogUniform(0.05, 5.0), doc="mRNA decay", unit="1/hour")
    b = m.param("b_trans", LogUniform(0.1, 50.0), doc="translation per mRNA", unit="1/hour")
    d_p = m.param("d_prot", LogUniform(0.01, 2.0), doc="protein loss", unit="1/hour")
    if hill:
        k = m.param("k_rep", LogUniform(1.0, 1000.0), doc="protein at half repression")
        n = m.param("n_hill", Fixed(2.0), doc="Hill coefficient")
        production = alpha * u / (1 + (prot / k) ** n)
    else:  # the wrong structure: no autorepression
        production = alpha * u
    m.flow(None, mrna, production, name="transcription")
    m.flow(mrna, None, d_m * mrna, name="mrna_decay")
    m.flow(None, prot, b * mrna, name="translation")
    m.flow(prot, None, d_p * prot, name="protein_loss")
    m.init(mrna=m.param("mrna0", LogUniform(0.1, 200.0)),
           protein=m.param("protein0", LogUniform(0.1, 2000.0)))
    m.observe("protein_au", prot, noise=LogNormalNoise(m.param("sd_p", LogUniform(0.01, 1.0))))
    if full:
        m.observe("mrna_per_cell", mrna,
                  noise=LogNormalNoise(m.param("sd_m", LogUniform(0.01, 1.0))))
    return m


def autorepressor(full: bool) -> BenchTask:
    times = np.arange(0.0, 96.5, 1.0)
    params = {"alpha": 20.0, "k_rep": 40.0, "n_hill": 2.0, "d_mrna": 0.5, "b_trans": 2.0,
              "d_prot": 0.1, "mrna0": 2.0, "protein0": 10.0, "sd_p": 0.05}
    if full:
        params["sd_m"] = 0.1
    seen = ("mRNA per cell (smFISH) and protein fluorescence (arbitrary units) were read "
            "every hour." if full else
            "Protein fluorescence (arbitrary units) was read every hour; mRNA was not measured.")
    return BenchTask(
        name=f"sysbio-autorepressor-{'full' if full else 'partial'}",
        domain="systems-biology",
        difficulty="medium" if full else "hard",
        tags=("discovery", "inputs", "gene-circuit", "hill-repression"),
        variant="full" if full else "partial",
        description=(
            "A synthetic gene circuit in E. coli: a transcription factor represses its own "
            "promoter, and the repression is cooperative (the protein binds as a dimer). An "
            "inducer added to the medium sets the promoter's maximal activity; the "
            "experimenter changed the inducer level three times during the experiment. mRNA "
            "is translated into protein; both decay, the protein slowly (mostly by dilution "
            "through growth). " + seen),
        time_unit="hour",
        times=times,
        train_until=60.0,
        validate_until=72.0,
        observed=("protein_au", "mrna_per_cell") if full else ("protein_au",),
        hidden=() if full else ("mrna",),
        truth_model=_autorepressor(full),
        truth_params=params,
        conditions=(),
        counterfactuals=(Counterfactual(
            "What if the inducer had been set to 1.0 from hour 72 on?",
            (SetValue("inducer", 1.0, 72.0),), 72.0),),
        recover={},
        wrong_model=_autorepressor(full, hill=False),
        noise_seed=907,
        inputs=(TaskInput("inducer", tuple(inducer_schedule(times)), "previous",
                          "inducer level set by the experimenter"),),
    )


def tasks() -> list[BenchTask]:
    return [autorepressor(True), autorepressor(False)]
