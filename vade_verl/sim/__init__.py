"""The sampler simulator (``vade-verl simulate``, docs/simulate.md): no verl trainer, no model.

* ``population``: the simulated policy: latent solve probabilities and the assumed learning dynamics.
* ``baseline_samplers``: the true-p references, DAPO dynamic sampling, offline filter, variance-aware samplers.
* ``calibrate``: fits the dynamics of ``population`` to a real run through verl (``python -m vade_verl.sim.calibrate``).
* ``peer_samplers``: the published peers MoPPS and GRESO as the simulator runs them.
* ``simulate``: the command: runs every sampler from one seed, writes steps.csv, summary.json, the figure.
"""
