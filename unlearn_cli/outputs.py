"""What a run records so that it can be reproduced: `run_record` builds the manifest's shared part.

Every command that writes a run folder (train, unlearn, eval) starts its manifest with `run_record(...)`
and adds its own results: the toolkit's version and the commit of the checkout it runs from (with a dirty
flag), the command line and working directory, the world size, devices and effective batch, every data
source with absolute paths and a SHA-256 of each local file, and the versions of the libraries that decide
the numbers. Nothing secret is recorded: the recipe is saved with `${env:...}` references, not their values.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unlearn_cli import __version__
from unlearn_cli.data.loading import (
    DATA_PATH_KEYS,
    FILE_SUFFIXES,
    LOCAL_BUILDERS,
    data_paths,
    data_sources,
    matching_paths,
)
from unlearn_cli.run_folder import is_main_process, now

__all__ = [
    "TRACKED_LIBRARIES",
    "batch_record",
    "command_line",
    "data_record",
    "environment_record",
    "hardware_record",
    "is_main_process",
    "now",
    "run_record",
    "toolkit_record",
]

TRACKED_LIBRARIES = (
    "torch",
    "transformers",
    "datasets",
    "accelerate",
    "tokenizers",
    "safetensors",
    "huggingface-hub",
    "peft",
    "numpy",
    "pydantic",
    "flash-attn",
    "deepspeed",
    "bitsandbytes",
)


# --- the toolkit itself -------------------------------------------------------------------------------------


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def toolkit_record() -> dict[str, Any]:
    """unlearn-cli's version and where its code came from: the commit of its own source checkout (not of
    the working directory) with a dirty flag, or the commit pip recorded for a git install."""
    package = Path(__file__).resolve().parent
    root = package.parent
    record: dict[str, Any] = {"version": __version__, "path": str(package), "commit": None, "dirty": None}
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is not None and Path(top).resolve() == root.resolve():
        record["source"] = "git checkout"
        record["commit"] = _git(root, "rev-parse", "HEAD")
        status = _git(root, "status", "--porcelain", "--", "unlearn_cli", "recipes", "pyproject.toml")
        record["dirty"] = None if status is None else bool(status)
        return record
    record["source"] = "installed package"
    try:
        direct = importlib.metadata.distribution("unlearn-cli").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        direct = None
    if direct:
        info = json.loads(direct)
        record["commit"] = (info.get("vcs_info") or {}).get("commit_id")
        record["installed_from"] = info.get("url")
    return record


def environment_record() -> dict[str, Any]:
    """Python, platform, and the versions of the libraries that decide the numbers (None: not installed)."""
    versions: dict[str, str | None] = {"unlearn-cli": __version__, "python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    record: dict[str, Any] = {"versions": versions, "platform": platform.platform()}
    torch = sys.modules.get("torch")
    if torch is not None:
        record["cuda"] = torch.version.cuda
        record["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return record


def command_line() -> str:
    """The command as typed, with the program shown as `unlearn` (also under `python -m unlearn_cli.cli`)."""
    return shlex.join(["unlearn", *sys.argv[1:]])


# --- hardware and batch -------------------------------------------------------------------------------------


def hardware_record(training_args: Any = None) -> dict[str, Any]:
    """World size, the kind of device each process uses, how many this machine has, and their names."""
    import torch

    world_size = int(getattr(training_args, "world_size", None) or os.environ.get("WORLD_SIZE", "1"))
    device = getattr(training_args, "device", None)
    kind = device.type if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    record: dict[str, Any] = {"world_size": world_size, "device_kind": kind}
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        record["device_count"] = count
        record["device_names"] = sorted({torch.cuda.get_device_name(i) for i in range(count)})
    else:
        record["device_count"] = 0 if kind == "cpu" else 1
        record["cpu_count"] = os.cpu_count()
    return record


def batch_record(training_args: Any) -> dict[str, Any]:
    """Per-device batch, accumulation, world size and their product: the effective batch of one step."""
    per_device = int(training_args.per_device_train_batch_size)
    accumulation = int(training_args.gradient_accumulation_steps)
    world = int(training_args.world_size)
    return {
        "per_device_train_batch_size": per_device,
        "gradient_accumulation_steps": accumulation,
        "world_size": world,
        "effective_batch_size": per_device * accumulation * world,
    }


# --- data ---------------------------------------------------------------------------------------------------


def file_fingerprint(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def source_files(hf_args: Mapping[str, Any]) -> tuple[str, list[Path]]:
    """How `hf_args` reads its data ('builtin', 'local' or 'hub') and the local files it reads."""
    from unlearn_cli.builtin import is_builtin, resolve_builtin
    from unlearn_cli.errors import UserError

    path = str(hf_args.get("path", ""))
    if is_builtin(path):
        try:
            target = resolve_builtin(path)
        except UserError:
            return "builtin", []
        if target.is_file():
            return "builtin", [target]
        name = hf_args.get("name")
        return "builtin", [target / f"{name}.jsonl"] if name and (target / f"{name}.jsonl").is_file() else []
    files: list[Path] = []
    for key in DATA_PATH_KEYS:
        for pattern in data_paths(hf_args.get(key)):
            for found in map(Path, matching_paths(os.path.expanduser(pattern))):
                files.extend(
                    sorted(p for p in found.rglob("*") if p.is_file()) if found.is_dir() else [found]
                )
    local_path = Path(path).expanduser()
    if path.lower().endswith(FILE_SUFFIXES) and local_path.is_file():
        files.append(local_path)
    elif path not in LOCAL_BUILDERS and local_path.is_dir():
        files.extend(sorted(p for p in local_path.rglob("*") if p.is_file() and ".cache" not in p.parts))
    if files or path in LOCAL_BUILDERS or local_path.exists():
        return "local", files
    return "hub", []


def data_record(recipe: Any) -> list[dict[str, Any]]:
    """Every data source of the recipe: split, name, handler, where it reads from and a fingerprint of each
    local file."""
    records = []
    for source in data_sources(recipe.data):
        entry: dict[str, Any] = {
            "split": source.split,
            "name": source.name,
            "handler": source.spec.component.name,
            "argument": source.argument,
        }
        if isinstance(source.value, Mapping):
            origin, files = source_files(source.value)
            entry["source"] = origin
            entry["hf_args"] = {k: v for k, v in source.value.items() if k != "token"}
            if origin == "hub":
                entry["revision"] = source.value.get("revision")
        else:
            local = Path(source.value).expanduser()
            files = [local] if local.is_file() else []
            entry["source"] = "local"
            entry["path"] = str(local.absolute())
        entry["files"] = [file_fingerprint(path) for path in files]
        records.append(entry)
    return records


def model_record(recipe: Any) -> dict[str, Any] | None:
    if recipe.model is None:
        return None
    model_args = recipe.model.args.get("model_args")
    location = getattr(model_args, "pretrained_model_name_or_path", None)
    record: dict[str, Any] = {"handler": recipe.model.component.name, "path": location}
    if isinstance(location, str) and Path(location).expanduser().exists():
        record["path"] = str(Path(location).expanduser().resolve())
    extra = getattr(model_args, "model_extra", None) or {}
    if "revision" in extra:
        record["revision"] = extra["revision"]
    return record


# --- the record ---------------------------------------------------------------------------------------------


def run_record(
    command: str,
    recipe: Any,
    *,
    training_args: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The reproducibility part of a run's manifest; commands add their own fields through `extra`."""
    record: dict[str, Any] = {
        "command": command,
        "command_line": command_line(),
        "working_directory": os.getcwd(),
        "run_name": recipe.run.name,
        "recipe": str(recipe.recipe.source),
        "output_dir": str(recipe.output_dir.expanduser().absolute()),
        "seed": recipe.run.seed,
        "toolkit": toolkit_record(),
        "hardware": hardware_record(training_args),
        "model": model_record(recipe),
        "data": data_record(recipe),
        **environment_record(),
    }
    if recipe.trainer is not None:
        record["trainer"] = recipe.trainer.component.name
        method_args = recipe.trainer.method_args
        record["method_args"] = (
            method_args.model_dump() if hasattr(method_args, "model_dump") else dict(method_args or {})
        )
    if training_args is not None:
        record["batch"] = batch_record(training_args)
        record["data_seed"] = training_args.data_seed
    record.update(extra or {})
    return record
