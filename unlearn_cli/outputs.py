"""Run output folders: never lose work, and record what produced each result."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from unlearn_cli import __version__
from unlearn_cli.errors import UserError

TRACKED_LIBRARIES = ("torch", "transformers", "datasets", "accelerate", "tokenizers", "peft")


def is_main_process() -> bool:
    """Rank 0 of a distributed launch (or a plain single process); decided before any process group exists."""
    return os.environ.get("RANK", "0") == "0"


def prepare_output_dir(output_dir: Path, *, overwrite: bool, key: str = "run.output_dir") -> None:
    """Refuse a non-empty output folder unless `overwrite`, in which case its contents are removed."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"output path {output_dir} exists and is not a folder", key=key)
    if output_dir.is_dir() and any(output_dir.iterdir()):
        if not overwrite:
            raise UserError(
                f"output folder {output_dir} is not empty; refusing to overwrite earlier results",
                key=key,
                hint=f"pass --overwrite to replace it, or choose another folder: {key}=path/to/new_folder",
            )
        if is_main_process():
            for child in output_dir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    if is_main_process():
        output_dir.mkdir(parents=True, exist_ok=True)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def environment_record() -> dict[str, Any]:
    versions: dict[str, str | None] = {"unlearn-cli": __version__, "python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"versions": versions, "git_commit": _git_commit(), "platform": platform.platform()}


def write_manifest(output_dir: Path, record: dict[str, Any]) -> Path:
    path = output_dir / "manifest.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    return path


def write_resolved_recipe(output_dir: Path, values: dict[str, Any]) -> Path:
    import tomli_w

    path = output_dir / "recipe.toml"
    path.write_text(tomli_w.dumps(values, multiline_strings=True), encoding="utf-8")
    return path
