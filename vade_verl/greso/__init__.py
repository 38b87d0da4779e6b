"""GRESO (Zheng et al., arXiv 2506.02177; github.com/Infini-AI-Lab/GRESO): skip prompts whose recent groups had zero variance.

* ``algorithm``: the pure math (numpy only): ``GRESOParams``, ``GRESOState`` (streaks, keep probabilities,
  adaptation) and ``GRESOSelector`` (the whole-dataset pre-rollout skip the verl sampler runs).
* ``config``: the ``data.sampler.greso`` block (the authors' defaults; errors name the full key).
* ``sampler``: ``GRESOSampler``, the verl curriculum sampler (``data.sampler.class_path=pkg://vade_verl.greso.sampler``).
"""
