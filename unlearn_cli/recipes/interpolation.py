"""`${dotted.key}` and `${env:NAME}` / `${env:NAME,default}` inside recipe strings.

Resolved after merging and overrides, so a reference sees the final value. A string that is exactly one
reference takes the referenced value with its type (`lr = "${base_lr}"` stays a float); references inside
longer strings are formatted as text. `$${` writes a literal `${`.

Values read from the environment may be secrets (`${env:HF_TOKEN}`): every key whose value came from an
environment variable, directly or through another reference, is remembered with its source text in
`MergedRecipe.env_references`, so saved and printed recipes show the reference instead of the value.
"""

from __future__ import annotations

import os
import re
from typing import Any

from unlearn_cli.errors import UserError, did_you_mean
from unlearn_cli.recipes.loading import KeyPath, MergedRecipe

_REFERENCE = re.compile(r"(?<!\$)\$\{([^{}]*)\}")
_ESCAPED = "$${"


def _all_key_paths(values: Any, prefix: KeyPath = ()) -> list[str]:
    paths: list[str] = []
    if isinstance(values, dict):
        for key, child in values.items():
            path = (*prefix, key)
            paths.append(".".join(path))
            paths.extend(_all_key_paths(child, path))
    return paths


def _candidates(values: Any, where: KeyPath) -> list[str]:
    """Key paths a misspelt reference may have meant: not the referring key or a table holding it (cycles)."""
    inside = {".".join(where[:end]) for end in range(1, len(where) + 1)}
    return [path for path in _all_key_paths(values) if path not in inside]


class _Resolver:
    def __init__(self, recipe: MergedRecipe) -> None:
        self.recipe = recipe
        self.values = recipe.values
        self.done: dict[KeyPath, Any] = {}
        self.env_references: dict[KeyPath, str] = {}
        self.referenced: set[str] = set()
        self._env_hit = False

    def _from_env(self, path: KeyPath) -> bool:
        return any(found[: len(path)] == path for found in self.env_references)

    def lookup(self, dotted: str, where: KeyPath, stack: tuple[KeyPath, ...]) -> Any:
        path = tuple(dotted.split("."))
        node: Any = self.values
        for part in path:
            if not isinstance(node, dict) or part not in node:
                raise UserError(
                    f"'${{{dotted}}}' refers to a key that does not exist",
                    file=self.recipe.origin(where),
                    key=".".join(where),
                    hint=did_you_mean(dotted, _candidates(self.values, where))
                    or "references use the full dotted path from the top of the recipe",
                )
            node = node[part]
        self.referenced.add(path[0])
        value = self.resolve(node, path, stack)
        if self._from_env(path):
            self._env_hit = True
        return value

    def expression(self, expr: str, where: KeyPath, stack: tuple[KeyPath, ...]) -> Any:
        expr = expr.strip()
        if expr.startswith("env:"):
            name, sep, default = expr[4:].partition(",")
            value = os.environ.get(name.strip())
            self._env_hit = True
            if value is not None:
                return value
            if sep:
                return default.strip()
            raise UserError(
                f"environment variable '{name.strip()}' is not set",
                file=self.recipe.origin(where),
                key=".".join(where),
                hint=f"export it, or give a default: ${{env:{name.strip()},DEFAULT}}",
            )
        return self.lookup(expr, where, stack)

    def resolve(self, value: Any, path: KeyPath, stack: tuple[KeyPath, ...] = ()) -> Any:
        if path in self.done:
            return self.done[path]
        if path in stack:
            cycle = " -> ".join("${" + ".".join(p) + "}" for p in (*stack[stack.index(path) :], path))
            raise UserError(
                f"interpolation cycle: {cycle}",
                file=self.recipe.origin(path),
                key=".".join(path),
                hint="break the loop by writing one of these values literally",
            )
        stack = (*stack, path)
        result: Any
        if isinstance(value, dict):
            result = {k: self.resolve(v, (*path, k), stack) for k, v in value.items()}
        elif isinstance(value, list):
            result = [self.resolve(v, (*path, str(i)), stack) for i, v in enumerate(value)]
        elif isinstance(value, str) and "${" in value:
            result = self.string(value, path, stack)
        else:
            result = value
        self.done[path] = result
        return result

    def string(self, text: str, path: KeyPath, stack: tuple[KeyPath, ...]) -> Any:
        outer, self._env_hit = self._env_hit, False
        try:
            result = self._string(text, path, stack)
        finally:
            hit, self._env_hit = self._env_hit, outer or self._env_hit
        if hit:
            self.env_references[path] = text
        return result

    def _string(self, text: str, path: KeyPath, stack: tuple[KeyPath, ...]) -> Any:
        whole = _REFERENCE.fullmatch(text)
        if whole:
            return self.expression(whole.group(1), path, stack)

        def substitute(match: re.Match[str]) -> str:
            value = self.expression(match.group(1), path, stack)
            if isinstance(value, dict | list):
                raise UserError(
                    f"'${{{match.group(1)}}}' is a {type(value).__name__} and cannot be embedded in text",
                    file=self.recipe.origin(path),
                    key=".".join(path),
                    hint="use the reference alone as the whole value to copy a table or array",
                )
            return str(value).lower() if isinstance(value, bool) else str(value)

        return _REFERENCE.sub(substitute, text).replace(_ESCAPED, "${")


def interpolate(recipe: MergedRecipe) -> None:
    """Replace every reference in `recipe.values`, in place; remember which values came from the
    environment (`recipe.env_references`) and which top-level keys are referenced (`recipe.referenced`)."""
    resolver = _Resolver(recipe)
    recipe.values = resolver.resolve(recipe.values, ())
    recipe.env_references = resolver.env_references
    recipe.referenced = resolver.referenced
