"""MSSR: group-free single-rollout RL with a tracked per-prompt baseline and entropy shaping (docs/mssr.md).

* ``advantage``: the pure math (numpy/torch): baseline tracker, rho schedule, advantage shaping.
* ``verl_plugin``: the verl glue: ``MSSRDataset`` and the registered ``mssr`` advantage estimator.
"""
