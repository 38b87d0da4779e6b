"""VADE as a verl 0.7.1 curriculum sampler (``verl.experimental.dataset.sampler``).

Select it with::

    data.sampler.class_path=pkg://vade_verl.vade.sampler data.sampler.class_name=VADESampler \\
    data.dataloader_num_workers=0 [+data.sampler.vade.<option>=<value> ...]

The verl side (dataset positions, reward feedback, the save-before-update handling with per-update
records and exact resume, epochs, metrics publishing) is ``vade_verl.verl_adapters.curriculum_sampler``,
shared with MoPPS and GRESO; this module supplies VADE's posteriors (``vade_verl.vade.algorithm``)
and its ``vade/*`` metrics. Each update record (``<state_dir>/vade_sampler/update_<n>.npz``) holds the
aggregated evidence ``positions``, ``successes``, ``trials``; the checkpoint's sampler state keeps the
posteriors under ``vade``.
"""

from __future__ import annotations

import numpy as np

from vade_verl.vade.algorithm import VADEState, posterior_mean
from vade_verl.vade.config import VADEConfig
from vade_verl.verl_adapters.curriculum_sampler import CurriculumSampler, percentiles


class VADESampler(CurriculumSampler):
    """Thompson-sampling InfoGain batch selection with online Beta posteriors (VADE)."""

    config_class = VADEConfig
    label = "VADE"

    def _build_state(self, num_samples: int, seed: int) -> VADEState:
        return VADEState(
            num_samples,
            l1=self.config.fast_decay,
            l2=self.config.slow_decay,
            score=self.config.score,
            selection=self.config.selection_mode,
            variant=self.config.variant,
            seed=seed,
        )

    def _update_state(self, positions: np.ndarray, correctness: np.ndarray, scores: np.ndarray) -> tuple[dict, dict]:
        """The two-scale decayed Bayes update (paper Sec. 3.3) and the posterior metrics before it."""
        before = posterior_mean(self.state.alpha, self.state.beta)
        update = self.state.update(positions, correctness)
        record = {key: update[key] for key in ("positions", "successes", "trials")}
        metrics = {
            "vade/never_seen": int((~self.state.seen).sum()),
            **percentiles(before[update["positions"]], "vade/batch_p"),
            **percentiles(before, "vade/all_p"),
        }
        return record, metrics
