"""Reading recipes: TOML files, packaged recipe names, `extends` composition and deep merge.

A recipe is found either as a file path or as the name of a packaged recipe (`quickstart/finetune`,
`models/Llama-3.2-1B-Instruct`). `extends` lists bases merged in order, the extending file last: tables merge,
arrays and scalars replace. Every key remembers the file it came from, so a later error can name the file
where the offending key was written rather than the top-level recipe.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn_cli.errors import UserError, closest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

RECIPE_SUFFIX = ".toml"
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
    candidate = packaged_recipes_root() / name
    if candidate.suffix != RECIPE_SUFFIX:
        candidate = candidate.with_name(candidate.name + RECIPE_SUFFIX)
    return candidate if candidate.is_file() else None


def locate_recipe(reference: str) -> Path:
    """A recipe given on the command line: a file path, else a packaged recipe name."""
    path = Path(reference).expanduser()
    if path.is_file():
        return path.resolve()
    packaged = packaged_recipe_path(reference)
    if packaged is not None:
        return packaged
    suggestions = closest(reference, packaged_recipe_names())
    hint = (
        "did you mean " + " or ".join(f"'{s}'" for s in suggestions) + "?"
        if suggestions
        else "give a path to a .toml file, or a packaged recipe name (see `unlearn recipe list`)"
    )
    raise UserError(
        f"recipe '{reference}' not found: no such file and no packaged recipe of that name", hint=hint
    )


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read recipe: {exc.strerror}", file=str(path)) from exc
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

    def origin(self, path: KeyPath) -> str:
        """The file (or 'command-line override') that set the key at `path` or its closest parent."""
        for end in range(len(path), 0, -1):
            found = self.origins.get(path[:end])
            if found is not None:
                return found
        return str(self.source)


def _record_origins(value: Any, path: KeyPath, origin: str, origins: dict[KeyPath, str]) -> None:
    origins[path] = origin
    if isinstance(value, dict):
        for key, child in value.items():
            _record_origins(child, (*path, key), origin, origins)


def deep_merge(
    base: dict[str, Any],
    update: dict[str, Any],
    *,
    origin: str,
    origins: dict[KeyPath, str],
    prefix: KeyPath = (),
) -> dict[str, Any]:
    """Merge `update` into a copy of `base`: tables merge recursively, anything else replaces."""
    merged = dict(base)
    for key, value in update.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            origins[path] = origin
            merged[key] = deep_merge(merged[key], value, origin=origin, origins=origins, prefix=path)
        else:
            for stale in [p for p in origins if p[: len(path)] == path]:
                del origins[stale]
            merged[key] = value
            _record_origins(value, path, origin, origins)
    return merged


def _resolve_extends_target(target: Any, parent: Path, index: int) -> Path:
    if not isinstance(target, str):
        raise UserError(
            f"each `extends` entry must be a string, got {type(target).__name__}",
            file=str(parent),
            key=f"extends[{index}]",
        )
    relative = (parent.parent / target).expanduser()
    for candidate in (relative, relative.with_name(relative.name + RECIPE_SUFFIX)):
        if candidate.is_file():
            return candidate.resolve()
    packaged = packaged_recipe_path(target)
    if packaged is not None:
        return packaged
    suggestions = closest(target, packaged_recipe_names())
    hint = "paths are relative to the recipe's folder; packaged names are listed by `unlearn recipe list`"
    if suggestions:
        hint = "did you mean " + " or ".join(f"'{s}'" for s in suggestions) + "? " + hint
    raise UserError(
        f"extends target '{target}' not found (looked for {relative} and a packaged recipe of that name)",
        file=str(parent),
        key=f"extends[{index}]",
        hint=hint,
    )


def load_merged(path: Path, _chain: tuple[Path, ...] = ()) -> MergedRecipe:
    """Read `path` and everything it extends, merged in order with the file itself last."""
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise UserError(f"`extends` forms a cycle: {cycle}", file=str(path), key="extends")
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
    origins: dict[KeyPath, str] = {}
    values: dict[str, Any] = {}
    for index, target in enumerate(extends):
        base = load_merged(_resolve_extends_target(target, path, index), (*_chain, path))
        for key_path, origin in base.origins.items():
            origins[key_path] = origin
        values = deep_merge(values, base.values, origin="", origins={})
    values = deep_merge(values, raw, origin=str(path), origins=origins)
    return MergedRecipe(values=values, source=path, origins=origins)
