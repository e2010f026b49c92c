"""Assets the toolkit builds itself, named by `builtin://` URIs, so nothing has to be downloaded.

`builtin://fictitious-authors` is a TOFU-shaped question/answer set and `builtin://tiny-llama` a tiny model
with its tokenizer; a recipe may name either wherever it takes a path. A URI may carry parameters
(`builtin://fictitious-authors?authors=200&facts=20`) and a file inside the asset
(`builtin://fictitious-authors/forget10.jsonl`).

An asset is generated on first use into a cache folder whose name holds every parameter and a format
version, so changed parameters or a changed generator never reuse stale files. It is built in a temporary
folder and moved into place with one `os.replace`, so two processes (two ranks of `accelerate launch`)
resolving it at once both end with a complete folder. This module imports neither torch nor transformers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from unlearn_cli.errors import UserError, did_you_mean

BUILTIN_SCHEME = "builtin://"
CACHE_ENV = "UNLEARN_CLI_CACHE"


def _build_authors(out: Path, params: dict[str, int]) -> None:
    from unlearn_cli.builtin.authors import write_author_splits

    write_author_splits(out, params["authors"], params["facts"], params["seed"])


def _build_tiny_llama(out: Path, params: dict[str, int]) -> None:
    from unlearn_cli.builtin.tiny_llama import build_tiny_llama

    build_tiny_llama(out, hidden=params["hidden"], layers=params["layers"], seed=params["seed"])


@dataclass(frozen=True)
class BuiltinAsset:
    """A generated asset: defaults, format version (bump it when the generator changes), and builder."""

    name: str
    description: str
    defaults: dict[str, int]
    version: int
    build: Callable[[Path, dict[str, int]], None]


ASSETS: dict[str, BuiltinAsset] = {
    asset.name: asset
    for asset in (
        BuiltinAsset(
            "fictitious-authors",
            "TOFU-shaped QA about invented authors: TOFU's training and evaluation configs (JSONL)",
            {"authors": 20, "facts": 10, "seed": 0},
            2,  # bump tiny-llama's version with this one: its tokenizer is trained on this generator's text
            _build_authors,
        ),
        BuiltinAsset(
            "tiny-llama",
            "a tiny Llama (random init) with a BPE tokenizer and chat template, for CPU runs and tests",
            {"hidden": 128, "layers": 2, "seed": 0},
            2,
            _build_tiny_llama,
        ),
    )
}


def is_builtin(path: str) -> bool:
    """Whether `path` names a builtin asset rather than a file or a hub id."""
    return isinstance(path, str) and path.startswith(BUILTIN_SCHEME)


def cache_root() -> Path:
    """Where assets are generated: `$UNLEARN_CLI_CACHE`, else `~/.cache/unlearn-cli`."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "unlearn-cli"


def _parse(uri: str) -> tuple[BuiltinAsset, dict[str, int], str]:
    if not is_builtin(uri):
        raise UserError(
            f"'{uri}' is not a builtin asset URI", hint=f"builtin assets start with {BUILTIN_SCHEME}"
        )
    parts = urlsplit(uri)
    asset = ASSETS.get(parts.netloc)
    if asset is None:
        known = ", ".join(f"{BUILTIN_SCHEME}{name}" for name in ASSETS)
        hint = did_you_mean(parts.netloc, ASSETS)
        raise UserError(
            f"unknown builtin asset '{parts.netloc}' in '{uri}'",
            hint=f"{hint + ' ' if hint else ''}known builtin assets: {known}",
        )
    params = dict(asset.defaults)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in asset.defaults:
            allowed = ", ".join(asset.defaults)
            hint = did_you_mean(key, asset.defaults)
            raise UserError(
                f"unknown parameter '{key}' for {BUILTIN_SCHEME}{asset.name}",
                hint=f"{hint + ' ' if hint else ''}its parameters are: {allowed}",
            )
        try:
            params[key] = int(value)
        except ValueError:
            raise UserError(
                f"parameter '{key}' of {BUILTIN_SCHEME}{asset.name} must be an integer, got '{value}'"
            ) from None
    return asset, params, parts.path.strip("/")


def asset_folder(uri: str) -> Path:
    """The cache folder a URI resolves to, whether or not it has been built yet."""
    asset, params, _ = _parse(uri)
    tag = "-".join(f"{key}{value}" for key, value in sorted(params.items()))
    return cache_root() / f"{asset.name}-{tag}-v{asset.version}"


def resolve_builtin(uri: str) -> Path:
    """The local folder (or file in it) a `builtin://` URI names, generating the asset on first use."""
    asset, params, inner = _parse(uri)
    folder = asset_folder(uri)
    if not folder.is_dir():
        if os.environ.get("RANK", "0") == "0":
            from unlearn_cli.console import console_err

            console_err.print(
                f"building {BUILTIN_SCHEME}{asset.name} into {folder} (first use; a few seconds)",
                highlight=False,
                soft_wrap=True,
            )
        _build_atomically(asset, params, folder)
    if not inner:
        return folder
    target = (folder / inner).resolve()
    if not target.is_relative_to(folder.resolve()) or not target.exists():
        files = sorted(p.name for p in folder.iterdir())
        hint = did_you_mean(inner, files)
        raise UserError(
            f"{BUILTIN_SCHEME}{asset.name} has no '{inner}'",
            hint=f"{hint + ' ' if hint else ''}it holds: {', '.join(files)}",
        )
    return target


def _build_atomically(asset: BuiltinAsset, params: dict[str, int], folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        asset.build(staging, params)
        # mkdtemp (and some writers) make owner-only files; a shared cache must be readable by all
        staging.chmod(0o755)
        for path in staging.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        try:
            os.replace(staging, folder)
        except OSError:
            if not folder.is_dir():
                raise
            # another process finished the same asset first; its copy is identical
    finally:
        shutil.rmtree(staging, ignore_errors=True)
