"""Load one split of a dataset from the Hub, local files or the built-in generator, as a `datasets.Dataset`.

Errors name the recipe key they come from (`key`, e.g. ``"hf_args"``), so a user sees which table to fix.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from unlearn_cli.builtin import is_builtin, resolve_builtin
from unlearn_cli.errors import UserError, did_you_mean

_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
_LOCAL_BUILDERS = frozenset(_FILE_BUILDERS.values()) | {"arrow"}
LOCAL_BUILDERS = tuple(sorted(_LOCAL_BUILDERS))
"""`datasets` builders that read local files (`path = "json"` with `data_files`)."""
FILE_SUFFIXES = (*_FILE_BUILDERS, ".arrow")
"""Suffixes of data files that `path` may name directly."""
DATA_PATH_KEYS = ("data_files", "data_dir")
"""`hf_args` keys that hold local paths."""


HF_ARGS_KEYS = ("hf_args", "few_shot_dataset_hf_args")
"""Dataset arguments that are `load_hf_dataset` tables."""
FILE_ARGS = ("idk_path",)
"""Dataset arguments that name one local file."""


class DataSource(NamedTuple):
    """Where one dataset of a recipe reads from: an `hf_args` table (a Mapping) or a local file (a str)."""

    split: str
    name: str
    spec: Any
    argument: str
    value: Any

    @property
    def key(self) -> str:
        return f"data.{self.split}.{self.name}.args.{self.argument}"


def data_sources(data: Mapping[str, Mapping[str, Any]]) -> Iterator[DataSource]:
    """Every source the datasets of a validated recipe (`recipe.data`) set, in recipe order: each
    `HF_ARGS_KEYS` table and each `FILE_ARGS` path."""
    for split, specs in data.items():
        for name, spec in specs.items():
            for argument in HF_ARGS_KEYS:
                if isinstance(spec.args.get(argument), Mapping):
                    yield DataSource(split, name, spec, argument, spec.args[argument])
            for argument in FILE_ARGS:
                if isinstance(spec.args.get(argument), str):
                    yield DataSource(split, name, spec, argument, spec.args[argument])


def data_paths(value: Any) -> Iterator[str]:
    """Every path in a (nested) TOML value: the files a `data_files` string, list or table names."""
    if isinstance(value, str | os.PathLike):
        yield os.fspath(value)
    elif isinstance(value, Mapping):
        for child in value.values():
            yield from data_paths(child)
    elif isinstance(value, list | tuple):
        for child in value:
            yield from data_paths(child)


def map_data_paths(value: Any, change: Callable[[str], str]) -> Any:
    """`value` (a path, or a list or table of them, as `data_files` takes) with `change` made to each path."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {key: map_data_paths(child, change) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [map_data_paths(child, change) for child in value]
    return value


def matching_paths(pattern: str) -> list[str]:
    """The existing paths a local path or glob pattern names, sorted; none for a URL."""
    if "://" in pattern:
        return []
    if glob.has_magic(pattern):
        return sorted(glob.glob(pattern))
    return [pattern] if os.path.exists(pattern) else []


def looked_for(pattern: str) -> Path:
    """Where a relative path is looked for: the working directory (for a hint)."""
    return Path(pattern) if Path(pattern).is_absolute() else Path.cwd() / pattern


def load_hf_dataset(hf_args: Mapping[str, Any], *, key: str = "hf_args") -> Any:
    """`datasets.load_dataset(**hf_args)` with checks and clear errors; returns one `datasets.Dataset`.

    Accepted forms: a Hub id (``path="locuslab/TOFU", name="forget10", split="train"``), a packaged builder
    with local files (``path="json", data_files="forget.jsonl"``; relative paths resolve against the working
    directory), a file path directly (``path="forget.jsonl"``), or ``path="builtin://fictitious-authors"``
    with ``name`` naming a subset of the generated set. Without a `split`, data that has a single split
    (local files, most small Hub sets) gives that split; data with several must name one.
    """
    if not isinstance(hf_args, Mapping) or not hf_args.get("path"):
        raise UserError(
            "needs a 'path': a Hub dataset id, a builder with data_files, a local file or builtin://...",
            key=f"{key}.path",
            hint='e.g. hf_args = { path = "json", data_files = "data/forget.jsonl", split = "train" }',
        )
    args = {  # `~` is the home folder, as for model paths (datasets would read a folder named `~`)
        name: map_data_paths(value, os.path.expanduser) if name in DATA_PATH_KEYS else value
        for name, value in hf_args.items()
    }
    args["path"] = path = os.path.expanduser(str(args["path"]))
    if is_builtin(path):
        return _load_builtin(path, args, key)
    suffix = Path(path).suffix.lower()
    if suffix in _FILE_BUILDERS and "data_files" not in args:
        args["path"] = _FILE_BUILDERS[suffix]
        args["data_files"] = path
    if args["path"] in _LOCAL_BUILDERS:
        if "data_files" not in args and "data_dir" not in args:
            raise UserError(
                f"builder '{args['path']}' needs 'data_files' (the file or files to read)",
                key=f"{key}.data_files",
            )
        if "data_files" in args:
            _check_local_files(args["data_files"], f"{key}.data_files")
            if not isinstance(args["data_files"], Mapping):
                args.setdefault("split", "train")
    return _load(args, key, local_files(args))


def local_files(args: Mapping[str, Any]) -> list[Path]:
    """The local files a packaged builder (json, csv, ...) reads, in the order it reads them."""
    if args.get("path") not in _LOCAL_BUILDERS:
        return []
    files: list[Path] = []
    for pattern in data_paths(args.get("data_files")):
        files.extend(Path(match) for match in matching_paths(pattern) if os.path.isfile(match))
    return files


def _json_problem(files: list[Path]) -> tuple[Path, int, str] | None:
    """(file, 1-based line, what) of the first line of a JSON / JSON Lines file that does not parse."""
    for file in files:
        if file.suffix.lower() not in (".json", ".jsonl"):
            continue
        text = file.read_text(encoding="utf-8", errors="replace")
        try:
            json.loads(text)
            continue  # one JSON document (an array of rows): valid
        except ValueError:
            pass
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                return (
                    file,
                    number,
                    f"not valid JSON: {getattr(exc, 'msg', exc)} (column {getattr(exc, 'colno', '?')})",
                )
            if not isinstance(row, dict):
                return file, number, f"a JSON {type(row).__name__}, not an object of columns"
    return None


def _innermost(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while (exc.__cause__ or exc.__context__) is not None and id(exc.__cause__ or exc.__context__) not in seen:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen.add(id(exc))
    return exc


def row_location(raw: Any, row: int) -> str:
    """Where row `row` (0-based) of a loaded dataset came from: 'line 7 of data/forget.jsonl' for a JSON
    Lines file (blank lines are skipped when loading, so they are skipped when counting), else 'row 7'."""
    files: list[Path] = getattr(raw, "unlearn_source_files", None) or []
    if len(files) == 1 and files[0].suffix.lower() in (".jsonl", ".json", ".csv"):
        file = files[0]
        if file.suffix.lower() == ".csv":
            return f"line {row + 2} of {file}"  # after the header line
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
        rows = [number for number, line in enumerate(lines, start=1) if line.strip()]
        try:
            if isinstance(json.loads("\n".join(lines)), list):
                return f"item {row + 1} of {file}"  # a JSON array: rows are its items
        except ValueError:
            pass
        if row < len(rows):
            return f"line {rows[row]} of {file}"
    return f"row {row + 1}"


@contextmanager
def _quiet_builder_errors() -> Iterator[None]:
    """The packaged builders log a file they cannot parse before raising; the error raised here says it
    better (file and line), so their log line would only be noise above it."""
    names = [
        f"datasets.packaged_modules.{builder}.{builder}" for builder in ("json", "csv", "parquet", "text")
    ]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _load(args: dict[str, Any], key: str, files: list[Path] | None = None) -> Any:
    import datasets

    if args.get("streaming"):
        raise UserError("streaming datasets are not supported", key=f"{key}.streaming", hint="remove it")
    try:
        with _quiet_builder_errors():
            loaded = datasets.load_dataset(**args)
    except ValueError as exc:
        if "corresponds to no data" in str(exc):
            raise UserError(
                f"dataset '{args['path']}' has zero rows in split '{args.get('split')}'",
                key=key,
                hint="check the split (and its slice) and the files",
            ) from exc
        split_error = "split" in str(exc).lower()
        raise UserError(
            f"cannot load dataset '{args['path']}': {exc}",
            key=f"{key}.split" if split_error else key,
            hint="check the split name (slices like 'train[:10%]' work too)" if split_error else None,
        ) from exc
    except RuntimeError as exc:
        # datasets >= 4 refuses datasets that come with a loading script (`<name>.py`) instead of data files.
        script = "scripts are no longer supported" in str(exc)
        raise UserError(
            f"cannot load dataset '{args['path']}': {exc}",
            key=key,
            hint="this dataset needs a loading script, which datasets no longer runs; load its data files "
            'instead: path = "json" (or "csv", "parquet") with data_files = the file(s)'
            if script
            else None,
        ) from exc
    except (OSError, datasets.exceptions.DatasetsError, StopIteration, TypeError) as exc:
        located = _json_problem(files or [])
        if located is not None:
            file, line, what = located
            raise UserError(
                f"data file {file}, line {line}: {what}",
                key=key,
                hint="fix that line (each line of a .jsonl file is one JSON object, e.g. "
                '{"question": "...", "answer": "..."})',
            ) from exc
        cause = _innermost(exc)
        if cause is not exc and files:
            raise UserError(
                f"cannot read {', '.join(str(f) for f in files[:3])}: {type(cause).__name__}: {cause}",
                key=key,
                hint="check the file's format against the builder (json, csv, parquet, text)",
            ) from exc
        hint = None
        if isinstance(exc, ConnectionError):
            hint = "the Hub is unreachable; use local files (path = 'json', data_files = ...) or builtin://"
        raise UserError(
            f"cannot load dataset '{args['path']}': {type(exc).__name__}: {exc}", key=key, hint=hint
        ) from exc
    if isinstance(loaded, datasets.DatasetDict) and len(loaded) == 1:
        loaded = next(iter(loaded.values()))
    if isinstance(loaded, datasets.DatasetDict):
        splits = ", ".join(f"'{s}'" for s in loaded)
        raise UserError(
            f"names no split, and dataset '{args['path']}' has several: {splits}",
            key=f"{key}.split",
            hint=f'add split = "{next(iter(loaded))}" (or another of them)',
        )
    if not isinstance(loaded, datasets.Dataset):
        raise UserError(
            f"gave a {type(loaded).__name__}, not a datasets.Dataset",
            key=key,
            hint="give one split, without streaming",
        )
    if len(loaded) == 0:
        raise UserError(f"dataset '{args['path']}' has zero rows", key=key, hint="check the split and files")
    loaded.unlearn_source_files = list(files or [])
    return loaded


def _check_local_files(data_files: Any, key: str) -> None:
    paths = list(data_paths(data_files))
    if not paths:
        raise UserError("names no files", key=key)
    for path in paths:
        if "://" in path:
            continue
        matches = matching_paths(path)
        if not matches:
            raise UserError(
                f"file not found: {path}",
                key=key,
                hint=f"looked for {looked_for(path)}; relative paths are read from the working directory",
            )
        if all(os.path.isfile(m) and os.path.getsize(m) == 0 for m in matches):
            raise UserError(f"'{path}' is empty: the dataset has zero rows", key=key)


def _load_builtin(path: str, args: dict[str, Any], key: str) -> Any:
    try:
        target = Path(resolve_builtin(path))
    except UserError as exc:
        raise exc.located(key=f"{key}.path") from exc
    if target.is_file():
        file = target
    else:
        available = sorted(p.stem for p in target.glob("*.jsonl"))
        name = args.get("name")
        if not name:
            raise UserError(
                f"'{path}' needs a 'name' choosing one of its subsets: {', '.join(available) or '(none)'}",
                key=f"{key}.name",
            )
        file = target / f"{name}.jsonl"
        if not file.is_file():
            raise UserError(
                f"'{path}' has no subset '{name}'; it has {', '.join(available) or 'none'}",
                key=f"{key}.name",
                hint=did_you_mean(str(name), available),
            )
    passed = {k: v for k, v in args.items() if k in {"cache_dir", "keep_in_memory", "download_mode"}}
    return _load(
        {"path": "json", "data_files": str(file), "split": args.get("split") or "train", **passed}, key
    )
