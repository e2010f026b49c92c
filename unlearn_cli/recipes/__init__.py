"""Recipes: TOML loading, `extends` composition, overrides, interpolation and validation.

`resolve_recipe` gives the merged values (cheap, no torch); `load_recipe` also validates them against the
registered components (imports the handlers, loads no weights or data).
"""

from __future__ import annotations

from unlearn_cli.errors import UserError
from unlearn_cli.recipes.interpolation import interpolate
from unlearn_cli.recipes.loading import MergedRecipe, load_merged, locate_recipe
from unlearn_cli.recipes.overrides import apply_overrides
from unlearn_cli.recipes.schema import ValidatedRecipe, validate_recipe

__all__ = ["MergedRecipe", "ValidatedRecipe", "load_recipe", "resolve_recipe"]


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
