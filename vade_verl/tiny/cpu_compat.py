"""Fill in the ``torch.cpu`` calls that verl 0.7.1 makes on its "device module" and CPU torch lacks.

On a host without an accelerator ``verl.utils.device.get_torch_device()`` returns ``torch.cpu``, and verl's
FSDP worker path then calls functions that only ``torch.cuda``/``torch.npu`` have (verl 0.7.1 lines, as
released, before ``patches/``):

- ``utils/memory_utils.py:46-59`` ``aggressive_empty_cache``: ``memory_reserved``, ``memory_allocated``,
  ``empty_cache`` (it runs because ``torch.cpu.is_available()`` is True), called from
  ``workers/fsdp_workers.py:995`` (end of ``init_model``) and ``:752/:828/:849`` (``rollout_mode``, before
  every weight sync);
- ``workers/fsdp_workers.py:1021-1022`` (``update_actor`` metrics): ``max_memory_allocated``,
  ``max_memory_reserved``;
- ``get_torch_device().empty_cache()``, e.g. ``workers/fsdp_workers.py:1090``.

There is no CPU caching allocator, so the honest values are: ``empty_cache`` does nothing and the
device-memory counters read 0 (the ``perf/max_memory_*_gb`` metrics are 0 on CPU; CPU RAM is already logged as
``perf/cpu_memory_used_gb``). Only attributes that are missing are added; nothing of torch is replaced.
Imported in every Ray process through ``VERL_USE_EXTERNAL_MODULES`` (``verl/__init__.py`` imports it).
"""

import torch


def _zero_bytes(device=None) -> int:
    return 0


def _nothing(*args, **kwargs) -> None:
    return None


CPU_SHIMS = {
    "empty_cache": _nothing,
    "reset_peak_memory_stats": _nothing,
    "memory_allocated": _zero_bytes,
    "memory_reserved": _zero_bytes,
    "max_memory_allocated": _zero_bytes,
    "max_memory_reserved": _zero_bytes,
}


def install() -> list[str]:
    """Add the missing ``torch.cpu`` functions; return the names added (empty if torch already has them)."""
    added = [name for name in CPU_SHIMS if not hasattr(torch.cpu, name)]
    for name in added:
        setattr(torch.cpu, name, CPU_SHIMS[name])
    return added


install()
