"""Getting our per-step metrics into verl's logger (verl 0.7.1).

verl gives plug-ins no metrics handle: ``RayPPOTrainer.fit`` builds a local ``metrics`` dict each
step and passes it to ``logger.log`` at the end of the step. Everything our plug-ins run on the
driver (the sampler's ``update``, a registered advantage estimator) runs inside ``fit`` before that
call, so adding entries to the ``metrics`` dict of the enclosing ``fit`` frame, found on the call
stack, makes them reach every configured backend (console, wandb, tensorboard, ...). This is the
one verl-version-specific trick for metrics; where no such frame exists (tests, other trainers)
callers keep their metrics themselves.
"""

from __future__ import annotations

import sys

MAX_FRAMES = 8


def publish_to_fit_metrics(metrics: dict) -> bool:
    """Merge ``metrics`` into the nearest calling ``fit`` frame's ``metrics`` dict; False if none."""
    frame = sys._getframe(1)
    for _ in range(MAX_FRAMES):
        if frame is None:
            return False
        target = frame.f_locals.get("metrics")
        if frame.f_code.co_name == "fit" and isinstance(target, dict):
            target.update(metrics)
            return True
        frame = frame.f_back
    return False
