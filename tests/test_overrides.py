"""Command-line overrides: `dotted.key=value` (TOML literal, else string) and `~dotted.key` deletion."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from unlearn_cli.errors import UserError
from unlearn_cli.recipes import resolve_recipe
from unlearn_cli.recipes.loading import MergedRecipe
from unlearn_cli.recipes.overrides import (
    OVERRIDE_ORIGIN,
    apply_overrides,
    parse_override,
    parse_value,
    split_key_path,
)


def make_recipe() -> MergedRecipe:
    values = {
        "run": {"name": "base", "seed": 0},
        "trainer": {"handler": "finetune", "args": {"learning_rate": 1e-5, "bf16": True}},
        "data": {"forget": {"TOFU": {"args": {"split": "forget10"}}}},
        "tags": ["a"],
    }
    origins = {
        ("run",): "r.toml",
        ("run", "name"): "r.toml",
        ("run", "seed"): "r.toml",
        ("trainer",): "r.toml",
        ("trainer", "args"): "r.toml",
        ("trainer", "args", "learning_rate"): "r.toml",
    }
    return MergedRecipe(values=values, source=Path("r.toml"), origins=origins)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("-2", -2),
        ("1e-5", 1e-5),
        ("0.5", 0.5),
        ("true", True),
        ("false", False),
        ("[1, 2, 3]", [1, 2, 3]),
        ('["a", "b"]', ["a", "b"]),
        ("{ path = 'locuslab/TOFU', split = 'train' }", {"path": "locuslab/TOFU", "split": "train"}),
        ('"quoted string"', "quoted string"),
        ("'single quoted'", "single quoted"),
        ('"42"', "42"),
        ("forget05", "forget05"),
        ("locuslab/TOFU", "locuslab/TOFU"),
        ("two words", "two words"),
        ("True", "True"),  # TOML booleans are lower case, so this stays text
        ("[unclosed", "[unclosed"),
        ("", ""),
        ("1979-05-27", datetime.date(1979, 5, 27)),
    ],
)
def test_parse_value(text: str, expected: Any) -> None:
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", ("a",)),
        ("trainer.args.learning_rate", ("trainer", "args", "learning_rate")),
        ('data.train."TOFU.v2".args', ("data", "train", "TOFU.v2", "args")),
        ("a.'b.c'", ("a", "b.c")),
        (" a . b ", ("a", "b")),
    ],
)
def test_split_key_path(text: str, expected: tuple[str, ...]) -> None:
    assert split_key_path(text) == expected


@pytest.mark.parametrize("text", ["a..b", "a.", ".a", "", 'a."b', "a.' '"])
def test_split_key_path_rejects_malformed_paths(text: str) -> None:
    with pytest.raises(UserError) as caught:
        split_key_path(text)
    assert caught.value.problem == f"malformed key path '{text}'"
    assert caught.value.hint == "write keys as dotted paths, e.g. trainer.args.learning_rate=1e-5"


def test_parse_override_set_and_delete() -> None:
    assert parse_override("trainer.args.learning_rate=2e-5") == (
        ("trainer", "args", "learning_rate"),
        2e-5,
        False,
    )
    assert parse_override("run.name = my run") == (("run", "name"), "my run", False)
    assert parse_override("vars.eq=a=b") == (("vars", "eq"), "a=b", False)  # only the first '=' splits
    assert parse_override("~trainer.args.bf16") == (("trainer", "args", "bf16"), None, True)


def test_parse_override_without_equals_sign() -> None:
    with pytest.raises(UserError) as caught:
        parse_override("trainer.args.learning_rate")
    assert caught.value.problem == "override 'trainer.args.learning_rate' has no '='"
    assert caught.value.hint is not None and "prefix a key with ~ to delete it" in caught.value.hint


def test_apply_overrides_sets_adds_deletes_in_order() -> None:
    recipe = make_recipe()
    apply_overrides(
        recipe,
        [
            "run.name=forget05",
            "trainer.args.learning_rate=2e-5",
            "trainer.method_args.alpha=0.5",  # a new table and a new key
            "~trainer.args.bf16",
            "data.forget.TOFU.args.split=forget01",
            "run.seed=1",
            "run.seed=2",  # later overrides win
            "tags=['x', 'y']",
        ],
    )
    assert recipe.values == {
        "run": {"name": "forget05", "seed": 2},
        "trainer": {
            "handler": "finetune",
            "args": {"learning_rate": 2e-5},
            "method_args": {"alpha": 0.5},
        },
        "data": {"forget": {"TOFU": {"args": {"split": "forget01"}}}},
        "tags": ["x", "y"],
    }


def test_override_origins_name_the_command_line() -> None:
    recipe = make_recipe()
    apply_overrides(recipe, ["run.name=x", "vars.new.deep=1", "trainer.args={ lr = 1 }"])
    assert recipe.origin(("run", "name")) == OVERRIDE_ORIGIN
    assert recipe.origin(("run", "seed")) == "r.toml"
    assert recipe.origin(("vars", "new", "deep")) == OVERRIDE_ORIGIN
    # tables an override creates belong to the command line too (an error about them must not blame the file)
    assert recipe.origin(("vars",)) == OVERRIDE_ORIGIN
    assert recipe.origin(("vars", "new")) == OVERRIDE_ORIGIN
    assert recipe.origin(("trainer", "args", "lr")) == OVERRIDE_ORIGIN
    assert recipe.values["trainer"]["args"] == {"lr": 1}  # a table value replaces the whole table


def test_override_replaces_a_table_with_a_scalar() -> None:
    recipe = make_recipe()
    apply_overrides(recipe, ["data=none"])
    assert recipe.values["data"] == "none"


def test_delete_a_missing_key_suggests_the_close_one() -> None:
    recipe = make_recipe()
    with pytest.raises(UserError) as caught:
        apply_overrides(recipe, ["~trainer.args.learning_rat"])
    error = caught.value
    assert error.problem == "cannot delete 'trainer.args.learning_rat': no such key"
    assert error.key == "trainer.args.learning_rat"
    assert error.hint == "did you mean 'learning_rate'?"


def test_delete_under_a_missing_table() -> None:
    recipe = make_recipe()
    with pytest.raises(UserError) as caught:
        apply_overrides(recipe, ["~trainr.args.bf16"])
    assert caught.value.problem == "cannot delete 'trainr.args.bf16': 'trainr' does not exist"
    assert caught.value.hint == "did you mean 'trainer'?"


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("run.name.first=x", "cannot set 'run.name.first': 'run.name' is a str, not a table"),
        ("~run.seed.x", "cannot delete 'run.seed.x': 'run.seed' is a int, not a table"),
        ("tags.x=1", "cannot set 'tags.x': 'tags' is a list, not a table"),
    ],
)
def test_override_through_a_non_table(override: str, problem: str) -> None:
    with pytest.raises(UserError) as caught:
        apply_overrides(make_recipe(), [override])
    assert caught.value.problem == problem


def test_resolve_recipe_reports_override_errors_as_command_line(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[run]\nname = "r"\n', encoding="utf-8")
    with pytest.raises(UserError) as caught:
        resolve_recipe(str(recipe), ["run.name"])
    assert caught.value.file == "command line"
    assert caught.value.render() == (
        "command line: override 'run.name' has no '='\n"
        "  hint: overrides look like `trainer.args.learning_rate=1e-5`; prefix a key with ~ to delete it"
    )


def test_resolve_recipe_applies_overrides_before_interpolation(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('lr = 1e-5\n[run]\nname = "run_${lr}"\n[vars]\nlr = "${lr}"\n', encoding="utf-8")
    resolved = resolve_recipe(str(recipe), ["lr=3e-4"])
    assert resolved.values == {"lr": 3e-4, "run": {"name": "run_0.0003"}, "vars": {"lr": 3e-4}}


def test_a_deletion_is_the_origin_of_the_now_missing_key() -> None:
    recipe = make_recipe()
    recipe.origins[("trainer", "args", "bf16")] = "r.toml"
    apply_overrides(recipe, ["~trainer.handler", "~trainer.args"])
    # a later "missing trainer.handler" error must blame the deletion, not the recipe that set the handler
    assert recipe.origin(("trainer", "handler")) == OVERRIDE_ORIGIN
    assert recipe.origin(("trainer", "args")) == OVERRIDE_ORIGIN
    assert recipe.origin(("trainer", "args", "learning_rate")) == OVERRIDE_ORIGIN  # stale origins dropped
    assert not [path for path in recipe.origins if path[:2] == ("trainer", "args") and len(path) > 2]
    assert recipe.origin(("trainer",)) == "r.toml"


def test_setting_a_table_drops_the_origins_of_the_keys_it_replaced() -> None:
    recipe = make_recipe()
    apply_overrides(recipe, ["trainer.args={ lr = 1 }"])
    assert ("trainer", "args", "learning_rate") not in recipe.origins


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        (
            'extends=["models/gemma-7b-it"]',
            "`extends` cannot be overridden on the command line "
            "(got 'extends=[\"models/gemma-7b-it\"]'): bases are merged first",
        ),
        (
            "~extends",
            "`extends` cannot be overridden on the command line (got '~extends'): bases are merged first",
        ),
        (
            "model._replace_=true",
            "`_replace_` cannot be set on the command line (got 'model._replace_=true'): "
            "it only steers `extends`",
        ),
    ],
)
def test_keys_that_steer_merging_cannot_be_overridden(override: str, problem: str) -> None:
    with pytest.raises(UserError) as caught:
        apply_overrides(make_recipe(), [override])
    assert caught.value.problem == problem
    assert caught.value.hint is not None


def test_extends_override_is_reported_not_ignored(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[run]\nname = "r"\n', encoding="utf-8")
    with pytest.raises(UserError) as caught:
        resolve_recipe(str(recipe), ['extends=["tofu_finetune"]'])
    assert caught.value.file == "command line"
    assert caught.value.hint is not None and caught.value.hint.startswith("write a recipe that extends")
