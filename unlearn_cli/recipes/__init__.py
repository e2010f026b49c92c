"""Recipes: TOML loading, `extends` composition, overrides, interpolation and validation.

`resolve_recipe` gives the merged values (cheap, no torch); `load_recipe` also validates them against the
registered components (imports the handlers, loads no weights or data).
"""

from __future__ import annotations

from typing import Any

from unlearn_cli.errors import UserError
from unlearn_cli.recipes.interpolation import interpolate
from unlearn_cli.recipes.loading import KeyPath, MergedRecipe, load_merged, locate_recipe
from unlearn_cli.recipes.overrides import apply_overrides
from unlearn_cli.recipes.schema import ValidatedRecipe, validate_recipe

__all__ = [
    "MergedRecipe",
    "ValidatedRecipe",
    "dump_recipe",
    "load_recipe",
    "recipe_text",
    "resolve_recipe",
]


def _escape_references(value: Any, references: dict[KeyPath, str], path: KeyPath = ()) -> Any:
    """`value` with every `${` in its strings written `$${`, so loading it again yields the same text;
    values at `references` become their source text instead (an `${env:...}` reference)."""
    if path in references:
        return references[path]
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, dict):
        # keys are never interpolated, so they are written as they are
        return {key: _escape_references(child, references, (*path, key)) for key, child in value.items()}
    if isinstance(value, list):
        return [_escape_references(child, references, (*path, str(i))) for i, child in enumerate(value)]
    return value


def dump_recipe(values: dict[str, Any], env_references: dict[KeyPath, str] | None = None) -> str:
    """A resolved recipe as TOML text that loads back to the same values.

    Resolved values are final: a `${...}` left in them is literal text (written `$${...}` in the source),
    so it is escaped again here; otherwise loading the dump would interpolate it a second time. Values
    that came from the environment (`env_references`) are written as their `${env:...}` reference, so a
    secret is never written and loading the text reads the environment again.
    """
    import tomli_w

    return tomli_w.dumps(_escape_references(values, env_references or {}), multiline_strings=True)


def recipe_text(recipe: MergedRecipe) -> str:
    """`dump_recipe` of a resolved recipe with its environment values masked by their references."""
    return dump_recipe(recipe.values, recipe.env_references)


def resolve_recipe(reference: str, overrides: list[str] | None = None) -> MergedRecipe:
    """Locate, merge (`extends`), override and interpolate a recipe."""
    path = locate_recipe(reference)
    recipe = load_merged(path)
    try:
        apply_overrides(recipe, list(overrides or []))
    except UserError as exc:
        raise exc.located(file="command line") from None
    interpolate(recipe)
    return recipe


def load_recipe(reference: str, overrides: list[str] | None = None) -> ValidatedRecipe:
    """Resolve a recipe, import its plugins, and validate it against the component catalogue."""
    from unlearn_cli.registry import Catalog

    recipe = resolve_recipe(reference, overrides)
    plugins = recipe.values.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise UserError(
            "`plugins` must be a list of module names",
            file=recipe.origin(("plugins",)),
            key="plugins",
            hint='e.g. plugins = ["my_package.my_components"]',
        )
    catalog = Catalog.discover(plugins, file=recipe.origin(("plugins",)))
    return validate_recipe(recipe, catalog)
