"""The ranks of an `accelerate launch`: work done once for all of them, results shared by all of them.

Everything here is a no-op in a single process, and relies only on the process group that transformers
(or accelerate) sets up when `TrainingArguments` are built — it never starts one itself.

- `prepared_once`: datasets are downloaded and tokenized by rank 0 first, then by the first rank of each
  other node (whose cache may be a local disk), then by the others, who find the cache filled.
- `share_across_ranks`: a per-item computation (reference log-probabilities) split evenly over the ranks
  and gathered, so every rank holds all of it after doing its share. Every rank runs the same number of
  forward passes, as ZeRO-3 requires.
- `whole_weights` / `deepspeed_inference_engine`: reference forwards under DeepSpeed ZeRO-3, whose
  parameters are partitioned across the ranks.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

Key = TypeVar("Key", bound=Hashable)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks ((0, 1) when no process group is initialized)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@contextlib.contextmanager
def prepared_once() -> Iterator[None]:
    """Run the body on rank 0, then on the first rank of each other node, then on every other rank.

    For work whose result is cached on disk (datasets' downloads and `map`): the first process fills the
    cache, the later ones read it. Nodes sharing a file system find it filled by rank 0; nodes with a local
    cache fill theirs once. Every rank must enter this the same number of times, in the same order.
    """
    rank, world = rank_and_world()
    if world == 1:
        yield
        return
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    stage = 0 if rank == 0 else 1 if local_rank == 0 else 2
    for _ in range(stage):
        dist.barrier()
    try:
        yield
    finally:  # also after an error, so the other ranks go on (and report the same error themselves)
        for _ in range(2 - stage):
            dist.barrier()


def share_across_ranks(
    count: int, compute: Callable[..., dict[Key, Any]], device: Any = None
) -> dict[Key, Any]:
    """`compute(indices=...)` over items 0..count-1, each rank computing an equal share; all of it everywhere.

    `compute` returns, per key, a tensor with one row per index it was given. The last share is padded by
    repeating the last item, so every rank makes the same number of forward passes; padding is dropped.
    """
    rank, world = rank_and_world()
    if world == 1 or count == 0:
        return compute(indices=list(range(count)))
    import torch
    import torch.distributed as dist

    share = -(-count // world)
    local = compute(indices=[min(index, count - 1) for index in range(rank * share, (rank + 1) * share)])
    gathered: dict[Key, Any] = {}
    for key in sorted(local, key=repr):
        tensor = local[key].to(device).contiguous()
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor)
        gathered[key] = torch.cat(parts)[:count].cpu()
    return gathered


def zero3_enabled() -> bool:
    """Whether this run partitions parameters with DeepSpeed ZeRO-3 (set once TrainingArguments exist)."""
    try:
        from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
    except ImportError:
        return False
    return bool(is_deepspeed_zero3_enabled())


@contextlib.contextmanager
def whole_weights(model: Any) -> Iterator[None]:
    """Under ZeRO-3, the model's full weights on every rank for the body (read-only); else nothing.

    Used before training, when no gradients or optimizer states exist yet: the peak is the weights once
    per GPU (2 bytes per parameter in bf16). Every rank must enter it together.
    """
    if not zero3_enabled():
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        yield


@contextlib.contextmanager
def loading_whole() -> Iterator[None]:
    """Models loaded in the body are whole, also in a ZeRO-3 run (whose loads are otherwise partitioned, a
    collective every rank would have to join): for one process's work after training, such as merging."""
    if not zero3_enabled():
        yield
        return
    from transformers.integrations import deepspeed as hf_deepspeed

    reference = hf_deepspeed._hf_deepspeed_config_weak_ref
    config = reference() if reference is not None else None  # what the run's TrainingArguments registered
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(config)


def deepspeed_inference_engine(model: Any, accelerator: Any) -> Any:
    """Under ZeRO-3, a frozen model as a DeepSpeed engine for forwards only, partitioned like the trained one.

    The trained model's DeepSpeed config without optimizer and scheduler, with the bucket sizes that
    transformers derives from the hidden size ("auto") set from it: how DeepSpeed serves a second model
    next to the trained one. (Below ZeRO-3 a reference is simply a copy on each GPU.)
    """
    import deepspeed

    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    hidden = getattr(getattr(model, "config", None), "hidden_size", None)
    if hidden:
        config.setdefault("zero_optimization", {}).update(
            reduce_bucket_size=hidden * hidden,
            stage3_param_persistence_threshold=10 * hidden,
            stage3_prefetch_bucket_size=int(0.9 * hidden * hidden),
        )
    engine, *_ = deepspeed.initialize(model=model, config=config)
    engine.eval()
    return engine
