"""verl's trainer step on the call stack: where our per-step metrics go (verl 0.7.1).

verl gives plug-ins no metrics handle. Everything our plug-ins run on the driver (the sampler's
``update`` and ``state_dict``, a registered advantage estimator) runs inside a step of a verl
``RayPPOTrainer``, whose step metrics reach every configured backend (console, wandb, file, ...):

* ``RayPPOTrainer.fit`` (``verl/trainer/ppo/ray_trainer.py:1290``) builds a local ``metrics`` dict
  each step and passes it to ``logger.log`` at the end of the step (``ray_trainer.py:1603``); a
  subclass that overrides ``fit`` keeps that pattern;
* ``SeparateRayPPOTrainer`` (``verl/experimental/separation/ray_trainer.py:348``) keeps the step's
  dict in ``self.metrics`` and logs it in ``_fit_postprocess_step``.

So we look up the whole call stack for a frame whose ``self`` is a verl ``RayPPOTrainer`` (any
subclass, however many wrapper frames lie between) and add our entries to that frame's ``metrics``
if the frame is a ``fit``, else to the trainer's ``self.metrics``. Where neither exists,
:class:`MetricsPublisher` warns once (``logging.WARNING``) and says where the metrics are kept.
"""

from __future__ import annotations

import logging
import sys
from types import FrameType
from typing import Iterator, Optional, Tuple

logger = logging.getLogger(__name__)


def _trainer_class() -> Optional[type]:
    try:
        from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    except ImportError:  # no verl: nothing to publish into
        return None
    return RayPPOTrainer


def trainer_step_frames(frame: Optional[FrameType]) -> Iterator[Tuple[dict, object, str]]:
    """``(locals, trainer, function name)`` of each frame from ``frame`` up whose ``self`` is a verl trainer.

    Innermost first; the whole stack is searched, so wrapper frames in between do not matter.
    """
    trainer_class = _trainer_class()
    if trainer_class is None:
        return
    while frame is not None:
        local_vars = frame.f_locals
        owner = local_vars.get("self")
        if isinstance(owner, trainer_class):
            yield local_vars, owner, frame.f_code.co_name
        frame = frame.f_back


def step_metrics() -> Optional[dict]:
    """The metrics dict of the verl trainer step that is running, or None outside one."""
    for local_vars, trainer, function in trainer_step_frames(sys._getframe(1)):
        if function == "fit" and isinstance(local_vars.get("metrics"), dict):
            return local_vars["metrics"]
        own = vars(trainer).get("metrics")
        if isinstance(own, dict):
            return own
    return None


def publish_to_fit_metrics(metrics: dict) -> bool:
    """Merge ``metrics`` into the running verl trainer step's metrics (see module doc); False if none."""
    target = step_metrics()
    if target is None:
        return False
    target.update(metrics)
    return True


class MetricsPublisher:
    """Publishes one plug-in's metrics each step; warns once, loudly, when they cannot reach verl's logger."""

    def __init__(self, family: str, kept_in: str):
        self.family = family
        self.kept_in = kept_in
        self.warned = False

    def publish(self, metrics: dict) -> bool:
        if publish_to_fit_metrics(metrics):
            return True
        if not self.warned:
            self.warned = True
            logger.warning(
                "%s metrics cannot be published: no verl RayPPOTrainer step is on the call stack (a `fit` "
                "with a local `metrics` dict, or a trainer with a `self.metrics` dict). They are kept in %s; "
                "this warning is not repeated",
                self.family,
                self.kept_in,
            )
        return False
