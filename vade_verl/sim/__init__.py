"""The sampler simulator (``vade-verl simulate``, docs/simulate.md): no verl trainer, no model.

* ``population``: the simulated policy: latent solve probabilities and the assumed learning dynamics.
* ``baseline_samplers``: the true-p references, DAPO dynamic sampling, offline filter, variance-aware samplers.
* ``calibrate``: fits the dynamics of ``population`` to a real run through verl (``python -m vade_verl.sim.calibrate``).
* ``peer_samplers``: GRESO's trainer loop (``greso_fill``) around the selectors of ``vade_verl.mopps`` and ``vade_verl.greso``.
* ``simulate``: the command: runs every sampler from one seed, writes steps.csv, summary.json, the figure.
"""
