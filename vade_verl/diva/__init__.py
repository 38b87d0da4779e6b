"""DIVA-GRPO: difficulty-adaptive variants and local/global advantages (docs/diva.md).

* ``advantage``: the pure math (numpy/torch): difficulty table, variant difficulties, the advantage.
* ``variants``: variant rendering (image perturbations, rewritten questions, hints), no verl import.
* ``prep``: offline paraphrase/solution preparation (``python -m vade_verl.diva.prep``).
* ``verl_plugin``: the verl glue: ``DivaRLHFDataset``, ``DivaAgentLoopManager``, the ``diva_grpo`` estimator.
"""
