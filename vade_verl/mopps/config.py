"""The ``data.sampler.mopps`` block: the authors' defaults, validated at start (pure, no verl import).

    data.sampler.class_path=pkg://vade_verl.mopps.sampler data.sampler.class_name=MoPPSSampler
    +data.sampler.mopps.decay=0.5 +data.sampler.mopps.candidates=8 +data.sampler.mopps.target=0.5

Every key is optional; an unknown key or a wrong value raises at start with the key's full name
(parser and shared options: ``vade_verl.verl_adapters.sampler_config``). The defaults are the
authors' multimodal-geometry setting (github.com/thu-rllab/MoPPS
``recipe/ours/scripts/geo3k/geo_verl_3b_topk_noinit.sh``: ``tasksampler.ts_ratio=8``,
``bandit_decay_ratio=0.5``, ``bandit_sample_strategy=topk``; ``bandit_target_mean: 0.5`` from
``recipe/ours/config/our_trainer.yaml``); docs/mopps.md compares them with the paper.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from vade_verl.verl_adapters.sampler_config import SamplerOptions

CONFIG_PREFIX = "data.sampler.mopps"


@dataclasses.dataclass(frozen=True)
class MoPPSConfig(SamplerOptions):
    """Options of the MoPPS sampler (and ``seed``, ``correctness``, ``resume``, ``state_dir``: ``SamplerOptions``).

    candidates: candidate pool per step in batches (``tasksampler.ts_ratio``): the pool is
        ``min(candidates x data.train_batch_size, N)`` prompts of a shuffled pass over the data.
    decay: ``l`` of the decayed Beta update (``tasksampler.bandit_decay_ratio``; 1 = no decay).
    target: target success rate the Thompson draws are ranked against (``tasksampler.bandit_target_mean``).
    """

    PREFIX: ClassVar[str] = CONFIG_PREFIX

    candidates: int = 8
    decay: float = 0.5
    target: float = 0.5

    def validate(self, prefix: str = CONFIG_PREFIX) -> None:
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) or self.candidates < 1:
            self.fail(prefix, "candidates", "must be an integer >= 1 (the candidate pool per step, in batches)")
        self.check_probability(prefix, "decay", "target")
        super().validate(prefix)
