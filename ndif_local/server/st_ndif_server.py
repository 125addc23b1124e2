"""Server-side adapters that let PyPI ndif 0.1.2 run on a machine without GPUs.

This module is on the PYTHONPATH of every server process (never the client's).
The stack points ndif at the two Ray actor classes below:

- ``NDIF_MODEL_IMPORT_PATH=st_ndif_server.CPUModelActor``: a model replica that
  loads the checkpoint on the CPU in float32 and skips ndif's CUDA calls
  (synchronize / empty_cache / placement checks).
- ``NDIF_CONTROLLER_IMPORT_PATH=st_ndif_server.Controller``: ndif's controller,
  unchanged, but imported from here so the compatibility patch below is applied
  inside the controller's worker process (Ray ships actor classes by value, so
  it is applied in ``Controller.__init__``, not at import).

Compatibility patch: every published ndif (0.1.0-0.1.2) calls
``Remotable.describe_checkpoint`` / ``Remotable.max_tp_size`` with a
``trust_remote_code=`` keyword that nnsight 0.8.1 does not accept. The patch
accepts and drops it (a local checkpoint folder never needs remote code).
"""

from __future__ import annotations

import gc
import logging
import time

import ray
from ndif.services.ray.deployments.controller.controller import _ControllerActor
from ndif.services.ray.deployments.modeling.base import BaseModelDeployment
from nnsight.modeling.huggingface import HuggingFaceModel

logger = logging.getLogger("ndif.modeling")


def _accept_trust_remote_code(name: str) -> None:
    from nnsight.modeling.mixins import remotable

    original = getattr(remotable.Remotable, name).__func__
    if getattr(original, "_st_patched", False):
        return

    def call(cls, model_key, *args, trust_remote_code=None, **kwargs):
        return original(cls, model_key, *args, **kwargs)

    call._st_patched = True
    setattr(remotable.Remotable, name, classmethod(call))


def patch_nnsight() -> None:
    for name in ("describe_checkpoint", "max_tp_size"):
        _accept_trust_remote_code(name)


class _CPUDeployment(BaseModelDeployment):
    """A model replica held on the CPU for its whole life (never parked)."""

    CACHEABLE = False

    def load_from_disk(self) -> HuggingFaceModel:
        started = time.time()
        model = HuggingFaceModel.from_model_key(
            self.model_key, dispatch=True, dtype=self.dtype_name, device="cpu", **self.kwargs
        )
        model._module.requires_grad_(False)
        logger.info(f"loaded {self.model_key} on cpu in {time.time() - started:.1f}s")
        return model

    async def to_cache(self) -> None:
        # CACHEABLE is False, so the controller evicts instead; stay safe anyway.
        await self.cancel("preempted")
        self.cached = True

    def from_cache(self, gpu_mem_bytes_by_id) -> None:
        self.gpu_mem_bytes_by_id = gpu_mem_bytes_by_id
        self.cached = False

    def cleanup(self) -> None:
        self.kill_switch.clear()
        self.kill_reason = None
        self.execution_ident = None
        self.model.interleaver.cancel()
        gc.collect()


@ray.remote(num_cpus=1, max_restarts=-1)
class CPUModelActor(_CPUDeployment):
    pass


@ray.remote(num_cpus=1, num_gpus=0, max_restarts=-1, resources={"head": 1})
class Controller(_ControllerActor):
    # Ray ships this class by value, so the patch must run in the actor's own process.
    def __init__(self, *args, **kwargs):
        patch_nnsight()
        super().__init__(*args, **kwargs)
