"""VADE on verl 0.9.x, whose trainers lost the sampler plug-in points (docs/verl09.md).

    python3 -m vade_verl.verl09.main_ppo_v1 ...   # verl's V1 trainer (trainer.use_v1=true, 0.9's default)
    python3 -m vade_verl.verl09.main_ppo ...      # verl's legacy trainer (trainer.use_v1=false)
"""

from __future__ import annotations

import importlib.metadata
from typing import Optional

SUPPORTED_VERL_PREFIX = "0.9."


def check_verl_version(version: Optional[str] = None) -> str:
    """The installed verl's version; raises unless it is a 0.9.x release this wrapper was built on."""
    version = version or importlib.metadata.version("verl")
    if not version.startswith(SUPPORTED_VERL_PREFIX):
        raise RuntimeError(
            f"vade_verl.verl09 wraps verl {SUPPORTED_VERL_PREFIX}x's trainer, but verl {version} is installed. "
            "On verl 0.5-0.7 select VADE with `python3 -m verl.trainer.main_ppo` itself; other versions are "
            "not supported (see docs/verl09.md)"
        )
    return version
