"""MoPPS as a verl 0.7.1 curriculum sampler (``verl.experimental.dataset.sampler``).

Select it with::

    data.sampler.class_path=pkg://vade_verl.mopps.sampler data.sampler.class_name=MoPPSSampler \\
    data.dataloader_num_workers=0 [+data.sampler.mopps.<option>=<value> ...]

The verl side (dataset positions, reward feedback, exact resume, epochs, metrics) is
``vade_verl.verl_adapters.curriculum_sampler``, shared with VADE and GRESO; this module supplies the
MoPPS selection (``vade_verl.mopps.algorithm.MoPPSSelector``) and its ``mopps/*`` metrics. The
authors' trainer calls ``PosteriorSampler.sample_batch`` on an ``ts_ratio``-times larger loader batch
(``recipe/ours/our_ray_trainer.py:176, 374``); here the sampler draws the candidate pool itself, so
verl's loader and trainer stay unchanged. Update records hold ``positions``, ``successes``, ``trials``.
"""

from __future__ import annotations

import numpy as np

from vade_verl.mopps.algorithm import MoPPSSelector
from vade_verl.mopps.config import MoPPSConfig
from vade_verl.verl_adapters.curriculum_sampler import CurriculumSampler, percentiles


class MoPPSSampler(CurriculumSampler):
    """Thompson draws from decayed Beta posteriors, the B candidates nearest the target success rate (MoPPS)."""

    config_class = MoPPSConfig
    label = "MoPPS"

    def _build_state(self, num_samples: int, seed: int) -> MoPPSSelector:
        c = self.config
        return MoPPSSelector(num_samples, candidates=c.candidates, decay=c.decay, target=c.target, seed=seed)

    def _update_state(self, positions: np.ndarray, correctness: np.ndarray, scores: np.ndarray) -> tuple[dict, dict]:
        """The decayed Beta update (``mopps.py:77-78``) and the posterior means before it."""
        before = self.state.posterior_mean()
        record = self.state.update(positions, correctness)
        metrics = {
            "mopps/candidate_pool": self.state.last_pool_size,
            **percentiles(before[record["positions"]], "mopps/batch_p"),
            **percentiles(before, "mopps/all_p"),
        }
        return record, metrics
