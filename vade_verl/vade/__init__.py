"""VADE (arXiv 2511.18902): Beta posteriors per sample, Thompson-sampled InfoGain batch selection.

* ``algorithm``: the pure math (numpy only): scores, Thompson draws, top-B, two-scale decay, ``VADEState``.
* ``config``: the ``data.sampler.vade`` block (paper defaults; errors name the full key).
* ``sampler``: ``VADESampler``, the verl curriculum sampler (``data.sampler.class_path=pkg://vade_verl.vade.sampler``).
"""
