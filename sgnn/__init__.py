"""Simulation-grounded neural networks: pretrained only on a run's validated simulators.

``corpus`` draws degraded simulations, ``network`` is the encoder, ``heads`` what is read
off it (forecast, parameter and structure heads by default, more by ``register_head``),
``train`` fits and checkpoints it, ``predict`` and ``attribute`` apply it to observations,
``counterfactual`` simulates the posterior draws it gives under an intervention,
``diagnostics`` checks calibration and referees against maximum likelihood and AIC.
Depends on ``mechanistic`` only; nothing is imported here, so importing the package
costs nothing.
"""
