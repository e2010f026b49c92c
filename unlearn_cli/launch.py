"""How a run was launched, for its manifest, and the small lookups the launch wrappers (`scripts/*.sh`) need.

`launch_record(trainer)` is the manifest's `launch` entry: processes, nodes, the distributed engine and its
settings (DDP, FSDP, DeepSpeed ZeRO stage and offload), the accelerate config file the wrappers launched
with (its path and contents), and for a PEFT run the adapter's config and parameter counts.

`python -m unlearn_cli.launch plan [CONFIG]` prints, as shell assignments, what the wrappers need: the
number of visible CUDA devices, a free TCP port and the path of the accelerate config (a packaged name or a
file). The wrappers ask the toolkit's own interpreter instead of whatever `python` is first on PATH.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

from unlearn_cli.errors import UserError, did_you_mean

ACCELERATE_CONFIG_ENV = "UNLEARN_ACCELERATE_CONFIG"
"""Set by the wrappers to the accelerate config file they launched with (accelerate does not pass it on)."""


def accelerate_config_path(name: str) -> Path:
    """A packaged accelerate config (`zero3`, `accelerate/zero3`) or a config file path."""
    from unlearn_cli.recipes.loading import packaged_accelerate_config_names, packaged_accelerate_config_path

    packaged = packaged_accelerate_config_path(name)
    if packaged is not None:
        return packaged
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    names = packaged_accelerate_config_names()
    raise UserError(
        f"accelerate config '{name}' not found: no such file and no packaged config of that name",
        key="ACCELERATE_CONFIG",
        hint=did_you_mean(name, [*names, *(n.split("/", 1)[1] for n in names)])
        or f"packaged: {', '.join(names)} (see `unlearn recipe list`); or give a path to a config file",
    )


def launch_record(trainer: Any = None, merged: Path | None = None) -> dict[str, Any]:
    """`{"launch": {...}}` for the run manifest (see the module docstring); `merged`: where `--merge` saved
    the merged model."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    record: dict[str, Any] = {
        "world_size": world,
        "num_nodes": max(world // max(per_node, 1), 1),
        "processes_per_node": per_node,
        "launcher": "accelerate launch" if "LOCAL_RANK" in os.environ else "single process",
        "accelerate_config": _config_record(os.environ.get(ACCELERATE_CONFIG_ENV)),
    }
    if trainer is not None:
        record.update(_engine_record(trainer))
        from unlearn_cli.models.adapters import adapter_record

        record["peft"] = adapter_record(trainer.model)
        if record["peft"] is not None and merged is not None:
            record["peft"]["merged_model"] = str(merged)
    return {"launch": record}


def _config_record(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        import yaml

        settings = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        settings = f"unreadable: {exc}"
    return {"path": path, "settings": settings}


def _engine_record(trainer: Any) -> dict[str, Any]:
    state = trainer.accelerator.state
    record: dict[str, Any] = {
        "distributed_type": str(getattr(state.distributed_type, "value", state.distributed_type)),
        "mixed_precision": str(trainer.accelerator.mixed_precision),
        "activation_checkpointing": bool(getattr(trainer.args, "activation_checkpointing", False)),
    }
    deepspeed = getattr(state, "deepspeed_plugin", None)
    if deepspeed is not None:
        zero = deepspeed.deepspeed_config.get("zero_optimization", {})
        record["deepspeed"] = {
            "zero_stage": zero.get("stage"),
            "offload_optimizer": zero.get("offload_optimizer", {}).get("device", "none"),
            "offload_param": zero.get("offload_param", {}).get("device", "none"),
        }
    fsdp = getattr(state, "fsdp_plugin", None)
    if fsdp is not None:
        record["fsdp"] = {
            "version": getattr(fsdp, "fsdp_version", 1),
            "reshard_after_forward": str(getattr(fsdp, "reshard_after_forward", None)),
            "activation_checkpointing": bool(getattr(fsdp, "activation_checkpointing", False)),
            "cpu_offload": str(getattr(fsdp, "cpu_offload", None)),
        }
    return record


def free_port() -> int:
    """A TCP port nothing listens on now (for the rendezvous of a single-node launch)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str]) -> int:
    """`plan [CONFIG]`: GPUS=, PORT= and CONFIG= lines for `eval` in a shell; errors exit with code 2."""
    if not argv or argv[0] != "plan" or len(argv) > 2:
        print("usage: python -m unlearn_cli.launch plan [ACCELERATE_CONFIG]", file=sys.stderr)
        return 2
    try:
        config = str(accelerate_config_path(argv[1])) if len(argv) == 2 and argv[1] else ""
    except UserError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return 2
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    print(f"GPUS={gpus}\nPORT={free_port()}\nCONFIG={shlex.quote(config)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
