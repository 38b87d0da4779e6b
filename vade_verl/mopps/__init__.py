"""MoPPS (Qu et al., arXiv 2507.04632; github.com/thu-rllab/MoPPS): Thompson-sampled Beta posteriors, target success rate.

* ``algorithm``: the pure math (numpy only): ``MoPPSState`` (posteriors, candidate selection, decayed update)
  and ``MoPPSSelector`` (the whole-dataset selection the verl sampler runs).
* ``config``: the ``data.sampler.mopps`` block (the authors' defaults; errors name the full key).
* ``sampler``: ``MoPPSSampler``, the verl curriculum sampler (``data.sampler.class_path=pkg://vade_verl.mopps.sampler``).
"""
