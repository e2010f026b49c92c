"""The recipe a run saves (`recipe.toml` in its folder): resolved, runnable from anywhere, without secrets.

Local paths (data files, model folders, the output folder) are written absolute, resolved the way the run
read them (against the working directory), so `unlearn train <run>/recipe.toml` works from any folder.
Values that came from `${env:...}` are written as that reference, and the manifest keeps a digest of each
(`environment_digests`). `--resume` compares both with the recipe it is given, so a resumed run is the run
that was interrupted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, TypeGuard

from unlearn_cli.data.loading import DATA_PATH_KEYS, LOCAL_BUILDERS, data_sources, map_data_paths
from unlearn_cli.recipes import dump_recipe
from unlearn_cli.recipes.loading import KeyPath
from unlearn_cli.recipes.schema import ValidatedRecipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


RESUMABLE_CHANGES = frozenset(
    {
        "run.measure_answer_nll",
        "trainer.args.logging_steps",
        "trainer.args.logging_first_step",
        "trainer.args.save_steps",
        "trainer.args.save_strategy",
        "trainer.args.save_total_limit",
        "trainer.args.report_to",
        "trainer.args.dataloader_num_workers",
        "trainer.args.dataloader_prefetch_factor",
        "trainer.args.dataloader_persistent_workers",
        "trainer.args.disable_tqdm",
    }
)
"""Keys a resumed run may change: they decide what is logged or saved, not what is trained."""


def _absolute(text: str) -> str:
    if "://" in text:
        return text
    path = Path(text).expanduser()
    return text if path.is_absolute() else str(path.absolute())


def _local(text: Any) -> TypeGuard[str]:
    return isinstance(text, str) and "://" not in text and Path(text).expanduser().exists()


def _hf_args(hf_args: dict[str, Any]) -> None:
    path = hf_args.get("path")
    if isinstance(path, str) and path not in LOCAL_BUILDERS and _local(path):
        hf_args["path"] = _absolute(path)
    for key in DATA_PATH_KEYS:
        if key in hf_args:
            hf_args[key] = map_data_paths(hf_args[key], _absolute)


def saved_values(recipe: ValidatedRecipe, output_dir: Path | None = None) -> dict[str, Any]:
    """The recipe's resolved values with every local path made absolute (`output_dir`: the run folder)."""
    values = copy.deepcopy(recipe.values)
    run = values.setdefault("run", {})
    run["output_dir"] = str((output_dir or recipe.output_dir).expanduser().absolute())
    for source in data_sources(recipe.data):
        args = values["data"][source.split][source.name].get("args") or {}
        value = args.get(source.argument)
        if isinstance(value, dict):
            _hf_args(value)
        elif _local(value):
            args[source.argument] = _absolute(value)
    model = values.get("model")
    if isinstance(model, dict):
        for table in ("model_args", "tokenizer_args"):
            args = model.get(table)
            if isinstance(args, dict) and _local(args.get("pretrained_model_name_or_path")):
                args["pretrained_model_name_or_path"] = _absolute(args["pretrained_model_name_or_path"])
    return values


def saved_recipe_text(recipe: ValidatedRecipe, output_dir: Path | None = None) -> str:
    """The text of the run folder's `recipe.toml`: absolute paths, `${env:...}` references kept."""
    header = (
        f"# The resolved recipe of run '{recipe.run.name}' (from {recipe.recipe.source}).\n"
        "# Rerun it with `unlearn <command> <this file> [--resume]`; values from the environment are read "
        "again.\n"
    )
    return header + dump_recipe(saved_values(recipe, output_dir), recipe.recipe.env_references)


def _flatten(value: Any, path: KeyPath = ()) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, child in value.items():
            flat.update(_flatten(child, (*path, key)))
        return flat
    return {".".join(path): value}


def recipe_differences(saved_text: str, current_text: str) -> list[tuple[str, Any, Any]]:
    """(key, saved value, current value) for every key whose value differs between two saved recipes."""
    saved, current = _flatten(tomllib.loads(saved_text)), _flatten(tomllib.loads(current_text))
    missing = object()
    return [
        (key, saved.get(key, missing), current.get(key, missing))
        for key in sorted(set(saved) | set(current))
        if saved.get(key, missing) != current.get(key, missing)
    ]


def describe_value(value: Any) -> str:
    return "(not set)" if not isinstance(value, str | int | float | bool | list | dict) else repr(value)


def environment_digests(recipe: ValidatedRecipe) -> dict[str, str]:
    """For each key whose value came from `${env:...}`: a digest of the value, never the value itself."""
    digests = {}
    for path in recipe.recipe.env_references:
        value: Any = recipe.values
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        encoded = json.dumps(value, sort_keys=True, default=str).encode()
        digests[".".join(path)] = hashlib.sha256(encoded).hexdigest()[:16]
    return digests


def environment_differences(saved: dict[str, str], current: dict[str, str]) -> list[str]:
    """The keys whose value from the environment is not the one the run started with."""
    return sorted(key for key in set(saved) | set(current) if saved.get(key) != current.get(key))
