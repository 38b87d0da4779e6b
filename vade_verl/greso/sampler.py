"""GRESO's pre-rollout skip as a verl 0.7.1 curriculum sampler (``verl.experimental.dataset.sampler``).

Select it with::

    data.sampler.class_path=pkg://vade_verl.greso.sampler data.sampler.class_name=GRESOSampler \\
    data.dataloader_num_workers=0 [+data.sampler.greso.<option>=<value> ...]

The verl side (dataset positions, reward feedback, exact resume, epochs, metrics) is
``vade_verl.verl_adapters.curriculum_sampler``, shared with VADE and MoPPS; this module supplies the
GRESO selection (``vade_verl.greso.algorithm.GRESOSelector``) and its ``greso/*`` metrics.

What differs from the authors' trainer (docs/greso.md): a skipped prompt is simply not yielded and
the sampler walks on until ``data.train_batch_size`` prompts are kept, so every step rolls out exactly
one batch. The authors' ``fit`` instead skips inside a fixed loader batch and rolls out what is left,
drops zero-variance groups and refills with shrinking sampling batches until the train batch is full
(``verl/trainer/ppo/ray_trainer.py:988-993, 1141-1181``): a sampler cannot change how many prompts a
step rolls out, nor drop groups after rollout. Update records hold the groups' ``positions``,
``all_correct``, ``no_correct``, ``hard`` flags, the step's ``easy_share``/``hard_share`` and ``adapt``.
"""

from __future__ import annotations

from vade_verl.greso.algorithm import GRESOSelector
from vade_verl.greso.config import GRESOConfig
from vade_verl.verl_adapters.curriculum_sampler import CurriculumSampler


class GRESOSampler(CurriculumSampler):
    """Skip prompts whose recent groups were all correct or all wrong, with adaptive probabilities (GRESO)."""

    config_class = GRESOConfig
    label = "GRESO"

    def _build_state(self, num_samples: int, seed: int) -> GRESOSelector:
        return GRESOSelector(num_samples, self.config.params(), hard_share=self.config.hard_share, seed=seed)

    def _update_state(self, positions, correctness, scores) -> tuple[dict, dict]:
        """The streaks and the adaptation of ``p_easy``/``p_hard``; metrics of the step's selection too."""
        selection = self.state.last_selection
        record = self.state.update(positions, correctness, scores)
        metrics = {
            "greso/p_easy": self.state.streaks.p_easy,
            "greso/p_hard": self.state.streaks.p_hard,
            "greso/all_correct_share": record["easy_share"],
            "greso/hard_share": record["hard_share"],
            "greso/candidates_examined": selection["examined"],
            "greso/skipped_easy": selection["skipped_easy"],
            "greso/skipped_hard": selection["skipped_hard"],
            "greso/epoch_boundary_repeats": selection["repeats"],
        }
        return record, metrics

    def _replay_record(self, record: dict) -> None:
        self.state.apply(record)

    def _skip_update(self) -> None:
        """No evidence: streaks and probabilities unchanged."""
        self.state.apply(self.state.empty_record())
