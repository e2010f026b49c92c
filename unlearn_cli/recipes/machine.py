"""Checks of a valid recipe against this machine, without loading weights or data.

`recipe validate` (unless `--recipe-only`), `--dry-run` and every run make them before anything heavy:
local model folders hold weights and a tokenizer, data files exist and are readable, hub ids can be reached
(or are in the local cache when offline: no minute of retries), the output folder can be created, and
what the recipe claims of the hardware holds (bf16 without a GPU, flash attention without flash-attn on a
GPU). All problems are reported together, like the recipe's own.
"""

from __future__ import annotations

import functools
import glob
import os
import socket
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from unlearn_cli.data.loading import (
    FILE_SUFFIXES,
    LOCAL_BUILDERS,
    data_paths,
    data_sources,
    looked_for,
    matching_paths,
)
from unlearn_cli.errors import UserError
from unlearn_cli.recipes.schema import ValidatedRecipe, _Problems

MODEL_KEY = "model.model_args.pretrained_model_name_or_path"
TOKENIZER_KEY = "model.tokenizer_args.pretrained_model_name_or_path"
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "*.pt", "*.gguf")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")
PROBE_TIMEOUT_S = 3.0


def _get(container: Any, key: str) -> Any:
    if isinstance(container, Mapping):
        return container.get(key)
    return getattr(container, key, None)


def offline() -> bool:
    return any(
        os.environ.get(name, "") not in ("", "0", "false", "False")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@functools.lru_cache(maxsize=4)
def hub_reachable(endpoint: str | None = None) -> bool:
    """Whether the hub's host accepts a connection within a few seconds (no retries, no request)."""
    parts = urlsplit(endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "huggingface.co", port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _hub_cache() -> Path:
    configured = os.environ.get("HF_HUB_CACHE")
    if configured:
        return Path(configured).expanduser()
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface").expanduser()
    return home / "hub"


def _in_hub_cache(repo_id: str, kind: str) -> bool:
    folder = _hub_cache() / f"{kind}s--{repo_id.replace('/', '--')}"
    return (folder / "snapshots").is_dir() and any((folder / "snapshots").iterdir())


def _dataset_in_cache(repo_id: str) -> bool:
    if _in_hub_cache(repo_id, "dataset"):
        return True
    cache = os.environ.get("HF_DATASETS_CACHE")
    root = Path(cache).expanduser() if cache else Path.home() / ".cache" / "huggingface" / "datasets"
    return (root / repo_id.replace("/", "___")).is_dir()


def _hub_problem(repo_id: str, what: str, cached: bool) -> tuple[str, str] | None:
    """(problem, hint) when `repo_id` can neither be found locally nor downloaded now. An id shaped like
    `org/name` may also be a local folder that does not exist yet (an earlier run's output): the hint says
    where that folder was looked for."""
    if cached:
        return None
    local = (
        f"if you meant a local folder, nothing is at {Path(repo_id).expanduser().absolute()}: fix the path, "
        "or run first the command that writes it (e.g. the fine-tune); "
    )
    if offline():
        return (
            f"{what} '{repo_id}' is not a local folder and not in the Hugging Face cache, and HF_HUB_OFFLINE "
            "is set",
            f"{local}otherwise download it where you have internet (`huggingface-cli download "
            f"{'--repo-type dataset ' if what == 'dataset' else ''}{repo_id}`) and point to the local "
            "folder, or unset HF_HUB_OFFLINE",
        )
    if not hub_reachable():
        return (
            f"{what} '{repo_id}' is not a local folder and not in the Hugging Face cache, and the hub "
            f"({os.environ.get('HF_ENDPOINT') or 'huggingface.co'}) cannot be reached from this machine",
            f"{local}otherwise download it where you have internet and point to the local folder (or copy "
            "the Hugging Face cache here)",
        )
    return None


def _model_cached(repo_id: str) -> bool:
    if _in_hub_cache(repo_id, "model"):
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an old huggingface_hub or a malformed id: the loader reports it
        return False


def _first_part_is_local(path: str) -> bool:
    first = Path(path).parts[0] if Path(path).parts else ""
    return "/" in path and bool(first) and Path(first).is_dir()


def _check_builtin(uri: str, problems: _Problems, key: str) -> None:
    from unlearn_cli.builtin import asset_folder

    try:
        asset_folder(uri)
    except UserError as exc:
        problems.add(exc.problem, key, hint=exc.hint)


def _check_model_location(
    recipe: ValidatedRecipe, path: Any, key: str, problems: _Problems, *, weights: bool, tokenizer: bool
) -> None:
    from unlearn_cli.builtin import is_builtin
    from unlearn_cli.models.loading import looks_like_hub_id

    if not isinstance(path, str) or not path:
        return
    what = "model" if weights else "tokenizer"
    if is_builtin(path):
        _check_builtin(path, problems, key)
        return
    local = Path(path).expanduser()
    if local.exists():
        if not local.is_dir():
            problems.add(
                f"{what} path '{path}' is a file, not a folder", key, hint="give the folder holding it"
            )
            return
        if not os.access(local, os.R_OK | os.X_OK):
            problems.add(
                f"{what} folder '{path}' cannot be read (permissions)", key, hint="check its permissions"
            )
            return
        names = {entry.name for entry in local.iterdir()}
        adapter = "adapter_config.json" in names
        if weights and not adapter:
            has_weights = any(glob.glob(str(local / pattern)) for pattern in WEIGHT_PATTERNS)
            missing = [
                name
                for name, ok in (("config.json", "config.json" in names), ("weights", has_weights))
                if not ok
            ]
            if missing:
                problems.add(
                    f"model folder '{path}' holds no {' and no '.join(missing)} (found: "
                    f"{', '.join(sorted(names)[:6]) or 'nothing'})",
                    key,
                    hint="point to a folder written by save_pretrained (a finished run folder of "
                    "`unlearn train` is one)",
                )
        if tokenizer and not names.intersection(TOKENIZER_FILES):
            problems.add(
                f"folder '{path}' holds no tokenizer (none of {', '.join(TOKENIZER_FILES[:3])}, ...)",
                key,
                hint=f"set {TOKENIZER_KEY} to the folder or hub id of the tokenizer",
            )
        return
    if not looks_like_hub_id(path) or _first_part_is_local(path) or path.startswith((".", "~", "/")):
        problems.add(
            f"{what} folder '{path}' does not exist (looked for {local.absolute()})",
            key,
            hint="relative paths are read from the working directory; give an existing folder saved with "
            "save_pretrained (e.g. the folder of a finished `unlearn train` run), a hub id like 'org/name', "
            "or builtin://tiny-llama",
        )
        return
    found = _hub_problem(path, what, _model_cached(path))
    if found:
        problems.add(found[0], key, hint=found[1])


def _check_data_file(pattern: str, key: str, problems: _Problems) -> None:
    if "://" in pattern:
        return
    expanded = os.path.expanduser(pattern)
    matches = matching_paths(expanded)
    if not matches:
        problems.add(
            f"data file not found: {pattern}",
            key,
            hint=f"looked for {looked_for(expanded)}; relative paths are read from the working directory",
        )
        return
    for match in matches:
        if os.path.isfile(match):
            if not os.access(match, os.R_OK):
                problems.add(
                    f"data file {match} cannot be read (permissions)", key, hint="check its permissions"
                )
            elif os.path.getsize(match) == 0:
                problems.add(
                    f"data file {match} is empty: the dataset would have zero rows",
                    key,
                    hint="point to the file that holds the data, or fill this one",
                )


def _check_hf_args(hf_args: Mapping[str, Any], key: str, problems: _Problems) -> None:
    from unlearn_cli.builtin import is_builtin
    from unlearn_cli.models.loading import looks_like_hub_id

    path = hf_args.get("path")
    if not isinstance(path, str) or not path:
        return  # the dataset handler reports a missing path when it loads
    if is_builtin(path):
        _check_builtin(path, problems, f"{key}.path")
        return
    for pattern in data_paths(hf_args.get("data_files")):
        _check_data_file(pattern, f"{key}.data_files", problems)
    for folder in data_paths(hf_args.get("data_dir")):
        if not Path(folder).expanduser().is_dir():
            problems.add(
                f"data folder not found: {folder}",
                f"{key}.data_dir",
                hint="relative paths are read from the working directory",
            )
    if path in LOCAL_BUILDERS:
        return
    local = Path(path).expanduser()
    if path.lower().endswith(FILE_SUFFIXES) and "data_files" not in hf_args:
        _check_data_file(path, f"{key}.path", problems)
        return
    if local.exists() or not looks_like_hub_id(path) or _first_part_is_local(path):
        if not local.exists():
            problems.add(
                f"dataset path '{path}' does not exist (looked for {local.absolute()})",
                f"{key}.path",
                hint="give a local file or folder, a hub id like 'org/name', or builtin://fictitious-authors",
            )
        return
    found = _hub_problem(path, "dataset", _dataset_in_cache(path))
    if found:
        problems.add(found[0], f"{key}.path", hint=found[1])


def _check_output_folder(recipe: ValidatedRecipe, problems: _Problems) -> None:
    """The output folder exists as a folder, or its nearest existing parent lets us create it."""
    target = recipe.output_dir.expanduser().absolute()
    key = "run.output_dir"
    if target.exists():
        if not target.is_dir():
            problems.add(f"output path {target} exists and is not a folder", key, hint="choose a folder")
        elif not os.access(target, os.W_OK | os.X_OK):
            problems.add(
                f"output folder {target} is not writable", key, hint="choose a folder you can write to"
            )
        return
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        problems.add(f"cannot create output folder {target}: {parent} is a file", key, hint="choose a folder")
        return
    try:  # the only sure test: create (and remove) a folder where the run would create its own
        probe = tempfile.mkdtemp(prefix=".unlearn-probe-", dir=parent)
        os.rmdir(probe)
    except OSError as exc:
        problems.add(
            f"cannot create output folder {target}: {exc.strerror or exc} in {parent}",
            key,
            hint="choose a folder you can write to (run.output_dir=...)",
        )


def _accelerator() -> str | None:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return "xpu"
    return None


def _check_hardware(
    recipe: ValidatedRecipe, problems: _Problems, training_args: Callable[[], Any] | None
) -> None:
    import importlib.util

    spec = recipe.trainer
    if spec is not None:
        uses_cpu = bool(spec.args.get("use_cpu"))
        for flag, what in (("bf16", "bfloat16"), ("fp16", "float16")):
            if spec.args.get(flag) and (_accelerator() is None and not uses_cpu):
                cpu_autocast = " (or trainer.args.use_cpu=true for slow bfloat16 autocast on the CPU)"
                problems.add(
                    f"{flag} = true asks for {what} mixed precision on a GPU, and this machine has none",
                    ("trainer", "args", flag),
                    hint=f"set trainer.args.{flag}=false to train in float32 here"
                    + (cpu_autocast if flag == "bf16" else "")
                    + ", or run on a GPU machine",
                )
        if not any(p.key.startswith(("trainer.args.bf16", "trainer.args.fp16")) for p in problems.items):
            from unlearn_cli.container import build_training_arguments

            build = training_args or functools.partial(
                build_training_arguments, recipe, spec.contract, recipe.output_dir
            )
            try:
                build()
            except UserError as exc:
                problems.extend(exc)
    model_args = recipe.model.args.get("model_args") if recipe.model is not None else None
    attention = _get(model_args, "attn_implementation")
    if isinstance(attention, str) and attention.startswith("flash_attention") and _accelerator() == "cuda":
        package = "flash_attn_3" if attention.endswith("3") else "flash_attn"
        if importlib.util.find_spec(package) is None:
            problems.add(
                f"attn_implementation = '{attention}' needs the {package.replace('_', '-')} package, "
                "which is "
                "not installed",
                ("model", "model_args", "attn_implementation"),
                hint='pip install "unlearn-cli[flash]" (flash-attn), or set '
                'model.model_args.attn_implementation="sdpa"',
            )


def check_machine(recipe: ValidatedRecipe, training_args: Callable[[], Any] | None = None) -> None:
    """Every check of `recipe` against this machine that needs no weights; one UserError for all problems.

    `training_args`: the run's own builder of its `TrainingArguments` (the container's), so that a run
    builds them once; without it they are built here only to be checked."""
    problems = _Problems(recipe.recipe)
    if recipe.model is not None:
        model_args = recipe.model.args.get("model_args")
        model_path = _get(model_args, "pretrained_model_name_or_path")
        tokenizer_path = recipe.model.tokenizer_args.get("pretrained_model_name_or_path")
        separate = isinstance(tokenizer_path, str) and tokenizer_path and tokenizer_path != model_path
        _check_model_location(recipe, model_path, MODEL_KEY, problems, weights=True, tokenizer=not separate)
        if separate:
            _check_model_location(
                recipe, tokenizer_path, TOKENIZER_KEY, problems, weights=False, tokenizer=True
            )
    for source in data_sources(recipe.data):
        if isinstance(source.value, Mapping):
            _check_hf_args(source.value, source.key, problems)
        elif not Path(source.value).expanduser().is_file():
            problems.add(
                f"idk file not found: {source.value}",
                source.key,
                hint="relative paths are read from the working directory",
            )
    _check_output_folder(recipe, problems)
    _check_hardware(recipe, problems, training_args)
    problems.raise_if_any()
