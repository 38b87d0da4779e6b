"""The sampler simulator (``vade-verl simulate``, docs/simulate.md): no verl trainer, no model.

* ``population``: the simulated policy: latent solve probabilities and the assumed learning dynamics.
* ``baseline_samplers``: random, oracle, DAPO dynamic sampling, offline filter, variance-aware samplers.
* ``peer_samplers``: GRESO's trainer loop (``greso_fill``) around the selectors of ``vade_verl.mopps`` and ``vade_verl.greso``.
* ``simulate``: the command: runs every sampler from one seed, writes steps.csv, summary.json, the figure.
"""
