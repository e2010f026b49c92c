"""Reading recipes: TOML files, packaged recipe names, `extends` composition and deep merge.

A recipe is found either as a file path or as the name of a packaged recipe (`quickstart/finetune`,
`models/Llama-3.2-1B-Instruct`). `extends` lists bases merged in order, the extending file last: tables merge,
arrays and scalars replace, and a table holding `_replace_ = true` replaces the inherited table whole (so one
model's settings cannot leak into another's). Every key remembers the file it came from, so a later error can
name the file where the offending key was written rather than the top-level recipe.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn_cli.errors import UserError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

RECIPE_SUFFIX = ".toml"
REPLACE_MARKER = "_replace_"
"""A table holding `_replace_ = true` replaces the table it is merged onto instead of merging into it."""
KeyPath = tuple[str, ...]


def packaged_recipes_root() -> Path:
    """Folder of the packaged recipes: inside an installed wheel, or `recipes/` of a source checkout."""
    package_dir = Path(__file__).resolve().parent.parent
    installed = package_dir / "_packaged_recipes"
    if installed.is_dir():
        return installed
    return package_dir.parent / "recipes"


def packaged_recipe_names() -> list[str]:
    root = packaged_recipes_root()
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob(f"*{RECIPE_SUFFIX}"))


def packaged_recipe_path(name: str) -> Path | None:
    """The packaged recipe called `name` (`.toml` optional), or None.

    An absolute path is never a packaged name: joined to the packaged folder it would stay itself, and
    absolute paths are resolved as files by the callers, so the two ways would disagree on `.toml`.
    """
    if Path(name).is_absolute():
        return None
    candidate = packaged_recipes_root() / name
    if candidate.suffix != RECIPE_SUFFIX:
        candidate = candidate.with_name(candidate.name + RECIPE_SUFFIX)
    return candidate if candidate.is_file() else None


ACCELERATE_FOLDER = "accelerate"
ACCELERATE_SUFFIX = ".yaml"
"""Packaged `accelerate launch` configs live in `<packaged recipes>/accelerate/*.yaml` (not recipes)."""


def packaged_accelerate_config_names() -> list[str]:
    """The packaged accelerate configs (`accelerate/zero3`, ...), for `recipe list` and `recipe cp`."""
    folder = packaged_recipes_root() / ACCELERATE_FOLDER
    if not folder.is_dir():
        return []
    return sorted(f"{ACCELERATE_FOLDER}/{p.stem}" for p in folder.glob(f"*{ACCELERATE_SUFFIX}"))


def packaged_accelerate_config_path(name: str) -> Path | None:
    """The packaged accelerate config `name` (`accelerate/zero3` or `zero3`, `.yaml` optional), or None."""
    if Path(name).is_absolute():
        return None
    stem = name.removeprefix(f"{ACCELERATE_FOLDER}/").removesuffix(ACCELERATE_SUFFIX)
    candidate = packaged_recipes_root() / ACCELERATE_FOLDER / f"{stem}{ACCELERATE_SUFFIX}"
    return candidate if "/" not in stem and candidate.is_file() else None


def _as_file(path: Path) -> Path | None:
    """`path` itself, else `path` with `.toml` added, if that is a file: both ways of naming a recipe file."""
    for candidate in (path, path.with_name(path.name + RECIPE_SUFFIX)):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _folder_error(folder: Path, **where: str) -> UserError:
    recipes = sorted(p.name for p in folder.glob(f"*{RECIPE_SUFFIX}"))
    listing = f" ({', '.join(recipes[:5])}{', ...' if len(recipes) > 5 else ''})" if recipes else ""
    return UserError(
        f"'{folder}' is a folder, not a recipe file",
        hint=f"give one of the .toml files inside it{listing}",
        **where,
    )


def locate_recipe(reference: str) -> Path:
    """A recipe given on the command line: a file path (`.toml` optional), else a packaged recipe name."""
    path = Path(reference).expanduser()
    found = _as_file(path) or packaged_recipe_path(reference)
    if found is not None:
        return found
    if path.is_dir():
        raise _folder_error(path)
    raise UserError(
        f"recipe '{reference}' not found: no such file and no packaged recipe of that name",
        hint=did_you_mean(reference, packaged_recipe_names())
        or "give a path to a .toml file, or a packaged recipe name (see `unlearn recipe list`)",
    )


def read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise _folder_error(path) from None
    except OSError as exc:
        raise UserError(f"cannot read recipe: {exc.strerror}", file=str(path)) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(
            f"not UTF-8 text: invalid byte 0x{data[exc.start]:02x} at byte offset {exc.start} (line {line})",
            file=str(path),
            hint="recipes are TOML files, which must be UTF-8; re-save the file as UTF-8",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(
            f"TOML syntax error: {exc}",
            file=str(path),
            hint="check quoting, brackets and `key = value` syntax on that line (strings need quotes)",
        ) from exc


@dataclass
class MergedRecipe:
    """A recipe after `extends` merging: its values and, for every key path, the file that set it."""

    values: dict[str, Any]
    source: Path
    origins: dict[KeyPath, str] = field(default_factory=dict)
    env_references: dict[KeyPath, str] = field(default_factory=dict)
    """Keys whose value came from `${env:...}` (directly or through references), with their source text."""
    referenced: set[str] = field(default_factory=set)
    """Top-level keys some `${...}` refers to (a top-level value nothing refers to is a mistake)."""

    def origin(self, path: KeyPath) -> str:
        """The file (or 'command-line override') that set the key at `path` or its closest parent."""
        for end in range(len(path), 0, -1):
            found = self.origins.get(path[:end])
            if found is not None:
                return found
        return str(self.source)


def drop_origins(origins: dict[KeyPath, str], path: KeyPath) -> None:
    """Forget the origins of `path` and everything below it (the value there is gone or replaced)."""
    for stale in [p for p in origins if p[: len(path)] == path]:
        del origins[stale]


def _record_origins(
    value: Any,
    path: KeyPath,
    origin: str,
    origins: dict[KeyPath, str],
    known: dict[KeyPath, str] | None = None,
) -> None:
    """Record `origin` for `path` and every key below it, or the origin `known` already has for a key."""
    origins[path] = (known or {}).get(path, origin)
    if isinstance(value, dict):
        for key, child in value.items():
            _record_origins(child, (*path, key), origin, origins, known)


def _replaces(value: Any) -> bool:
    return isinstance(value, dict) and value.get(REPLACE_MARKER) is True


def deep_merge(
    base: dict[str, Any],
    update: dict[str, Any],
    *,
    origin: str,
    origins: dict[KeyPath, str],
    prefix: KeyPath = (),
    update_origins: dict[KeyPath, str] | None = None,
) -> dict[str, Any]:
    """Merge `update` into a copy of `base`: tables merge recursively, anything else replaces.

    A table of `update` holding `_replace_ = true` replaces `base`'s table whole. The marker stays in the
    result, so a merged base still replaces what it is merged onto later; `strip_replace_markers` removes it.
    `update_origins` gives the origins of `update`'s keys when it is itself a merged recipe.
    """
    merged = dict(base)
    for key, value in update.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and not _replaces(value):
            origins[path] = (update_origins or {}).get(path, origin)
            merged[key] = deep_merge(
                merged[key], value, origin=origin, origins=origins, prefix=path, update_origins=update_origins
            )
        else:
            drop_origins(origins, path)
            merged[key] = value
            _record_origins(value, path, origin, origins, update_origins)
    return merged


def check_replace_markers(values: dict[str, Any], file: str, prefix: KeyPath = ()) -> None:
    """A misspelt marker value (`_replace_ = "yes"`) must not silently merge, nor reach the components."""
    if REPLACE_MARKER in values:
        if not prefix:
            raise UserError(
                f"`{REPLACE_MARKER}` at the top level of a recipe has no effect",
                file=file,
                key=REPLACE_MARKER,
                hint="put it inside the table that should replace the inherited one, e.g. under [model]",
            )
        if not isinstance(values[REPLACE_MARKER], bool):
            raise UserError(
                f"`{REPLACE_MARKER}` must be true or false, got {type(values[REPLACE_MARKER]).__name__}",
                file=file,
                key=".".join((*prefix, REPLACE_MARKER)),
                hint="`_replace_ = true` makes this table replace the inherited one instead of merging",
            )
    for key, value in values.items():
        if isinstance(value, dict):
            check_replace_markers(value, file, (*prefix, key))


def strip_replace_markers(values: dict[str, Any]) -> dict[str, Any]:
    """`values` without any `_replace_` key, at any depth: markers steer merging and are no recipe setting."""
    return {
        key: strip_replace_markers(value) if isinstance(value, dict) else value
        for key, value in values.items()
        if key != REPLACE_MARKER
    }


def _resolve_extends_target(target: Any, parent: Path, index: int) -> Path:
    where = {"file": str(parent), "key": f"extends[{index}]"}
    if not isinstance(target, str):
        raise UserError(f"each `extends` entry must be a string, got {type(target).__name__}", **where)
    relative = (parent.parent / target).expanduser()
    found = _as_file(relative) or packaged_recipe_path(target)
    if found is not None:
        return found
    if relative.is_dir():
        raise _folder_error(relative, **where)
    hint = "paths are relative to the recipe's folder; packaged names are listed by `unlearn recipe list`"
    suggestion = did_you_mean(target, packaged_recipe_names())
    raise UserError(
        f"extends target '{target}' not found (looked for {relative} and a packaged recipe of that name)",
        hint=f"{suggestion} {hint}" if suggestion else hint,
        **where,
    )


def _load_layers(path: Path, chain: tuple[Path, ...]) -> MergedRecipe:
    """`load_merged` with the `_replace_` markers kept, so the result can be merged onto other bases."""
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise UserError(
            f"`extends` forms a cycle: {cycle}",
            file=str(path),
            key="extends",
            hint="a recipe cannot extend itself, directly or through its bases: remove one of these extends",
        )
    raw = read_toml(path)
    extends = raw.pop("extends", [])
    if isinstance(extends, str):
        extends = [extends]
    if not isinstance(extends, list):
        raise UserError(
            f"`extends` must be a list of recipe paths or names, got {type(extends).__name__}",
            file=str(path),
            key="extends",
        )
    check_replace_markers(raw, str(path))
    origins: dict[KeyPath, str] = {}
    values: dict[str, Any] = {}
    for index, target in enumerate(extends):
        base = _load_layers(_resolve_extends_target(target, path, index), (*chain, path))
        values = deep_merge(
            values, base.values, origin=str(base.source), origins=origins, update_origins=base.origins
        )
    values = deep_merge(values, raw, origin=str(path), origins=origins)
    return MergedRecipe(values=values, source=path, origins=origins)


def load_merged(path: Path) -> MergedRecipe:
    """Read `path` and everything it extends, merged in order with the file itself last."""
    merged = _load_layers(path, ())
    merged.values = strip_replace_markers(merged.values)
    for stale in [p for p in merged.origins if REPLACE_MARKER in p]:
        del merged.origins[stale]
    return merged
