"""Run output folders: never lose work, and record what produced each result."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from unlearn_cli import __version__
from unlearn_cli.errors import UserError

TRACKED_LIBRARIES = ("torch", "transformers", "datasets", "accelerate", "tokenizers", "peft")


def is_main_process() -> bool:
    """Rank 0 of a distributed launch (or a plain single process); decided before any process group exists."""
    return os.environ.get("RANK", "0") == "0"


RUN_MARKERS = ("recipe.toml", "manifest.json")
"""Files every run folder holds from its start (recipe.toml) or end (manifest.json)."""


def check_output_dir(output_dir: Path, *, overwrite: bool, key: str = "run.output_dir") -> None:
    """Refuse an output folder that would lose work: non-empty without `overwrite`, or not a run folder."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"output path {output_dir} exists and is not a folder", key=key)
    if not output_dir.is_dir() or not any(output_dir.iterdir()):
        return
    if not overwrite:
        raise UserError(
            f"output folder {output_dir} is not empty; refusing to overwrite earlier results",
            key=key,
            hint=f"pass --overwrite to replace it, or choose another folder: {key}=path/to/new_folder",
        )
    if not any((output_dir / marker).exists() for marker in RUN_MARKERS):
        raise UserError(
            f"output folder {output_dir} is not empty and holds no earlier run ({' or '.join(RUN_MARKERS)}); "
            "refusing to replace it even with --overwrite",
            key=key,
            hint=f"choose a new or empty folder: {key}=path/to/new_folder",
        )


def prepare_output_dir(output_dir: Path, *, overwrite: bool, key: str = "run.output_dir") -> Path | None:
    """Check and create the output folder (rank 0 only); an earlier run being replaced is moved aside.

    Returns where the earlier run waits (`<folder>.previous`) until the new one has finished, so a failed
    run gives it back (see `replacing_previous_run`); None when nothing was replaced.
    """
    if not is_main_process():
        return None
    check_output_dir(output_dir, overwrite=overwrite, key=key)
    previous = None
    try:
        if output_dir.is_dir() and any(output_dir.iterdir()):
            previous = output_dir.with_name(output_dir.name + ".previous")
            if previous.exists():
                shutil.rmtree(previous)
            output_dir.rename(previous)
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create output folder {output_dir}: {exc.strerror or exc}",
            key=key,
            hint="choose a folder you can write to",
        ) from None
    return previous


@contextmanager
def replacing_previous_run(output_dir: Path, previous: Path | None) -> Iterator[None]:
    """Delete the replaced run once the new one succeeded; put it back if the new one fails."""
    try:
        yield
    except BaseException:
        if previous is not None and previous.is_dir():
            shutil.rmtree(output_dir, ignore_errors=True)
            previous.rename(output_dir)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


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
    from unlearn_cli.recipes import dump_recipe

    path = output_dir / "recipe.toml"
    path.write_text(dump_recipe(values), encoding="utf-8")
    return path
