"""`${dotted.key}`, `${env:NAME}`, `${env:NAME,default}` and the `$${` escape in recipe strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from unlearn_cli.errors import UserError
from unlearn_cli.recipes.interpolation import interpolate
from unlearn_cli.recipes.loading import MergedRecipe, load_merged

UNSET = "UNLEARN_TEST_SURELY_UNSET_VARIABLE"


def resolved(values: dict[str, Any], origins: dict[tuple[str, ...], str] | None = None) -> dict[str, Any]:
    recipe = MergedRecipe(values=values, source=Path("recipe.toml"), origins=origins or {})
    interpolate(recipe)
    return recipe.values


def failure(values: dict[str, Any], origins: dict[tuple[str, ...], str] | None = None) -> UserError:
    with pytest.raises(UserError) as caught:
        resolved(values, origins)
    return caught.value


def test_whole_string_reference_keeps_the_type() -> None:
    values = resolved(
        {
            "base": {"lr": 1e-5, "epochs": 5, "bf16": True, "tags": ["a", "b"], "hf": {"path": "x"}},
            "trainer": {
                "lr": "${base.lr}",
                "epochs": "${base.epochs}",
                "bf16": "${ base.bf16 }",
                "tags": "${base.tags}",
                "hf": "${base.hf}",
            },
        }
    )
    trainer = values["trainer"]
    assert trainer == {"lr": 1e-5, "epochs": 5, "bf16": True, "tags": ["a", "b"], "hf": {"path": "x"}}
    assert type(trainer["epochs"]) is int
    assert type(trainer["bf16"]) is bool


def test_references_chain_through_other_references_in_any_order() -> None:
    values = resolved({"a": "${b}", "b": "${c.d}", "c": {"d": "${e}"}, "e": 7})
    assert values == {"a": 7, "b": 7, "c": {"d": 7}, "e": 7}


def test_embedded_references_are_formatted_as_text() -> None:
    values = resolved(
        {
            "model": "Llama-3.2-1B",
            "split": "forget05",
            "seed": 3,
            "lr": 1e-5,
            "flag": False,
            "name": "${model}_${split}_seed${seed}",
            "detail": "lr=${lr} flag=${flag}",
        }
    )
    assert values["name"] == "Llama-3.2-1B_forget05_seed3"
    assert values["detail"] == "lr=1e-05 flag=false"  # booleans as TOML writes them


def test_references_inside_arrays_and_nested_tables() -> None:
    values = resolved({"n": 4, "xs": ["${n}", "n=${n}", {"deep": "${n}"}]})
    assert values["xs"] == [4, "n=4", {"deep": 4}]


def test_env_variable_whole_and_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNLEARN_TEST_DATA_DIR", "/data/tofu")
    values = resolved({"path": "${env:UNLEARN_TEST_DATA_DIR}", "file": "${env:UNLEARN_TEST_DATA_DIR}/x.json"})
    assert values == {"path": "/data/tofu", "file": "/data/tofu/x.json"}


def test_env_default_is_used_only_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    monkeypatch.setenv("UNLEARN_TEST_SET", "from-env")
    values = resolved(
        {
            "unset": "${env:" + UNSET + ",fallback}",
            "spaced": "${env: " + UNSET + " , spaced default }",
            "empty": "${env:" + UNSET + ",}",
            "set": "${env:UNLEARN_TEST_SET,fallback}",
        }
    )
    assert values == {"unset": "fallback", "spaced": "spaced default", "empty": "", "set": "from-env"}


def test_missing_env_variable_without_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    error = failure({"run": {"output_dir": "${env:" + UNSET + "}/out"}}, {("run",): "base.toml"})
    assert error.file == "base.toml"
    assert error.key == "run.output_dir"
    assert error.problem == f"environment variable '{UNSET}' is not set"
    assert error.hint == f"export it, or give a default: ${{env:{UNSET},DEFAULT}}"


def test_cycle_between_two_keys() -> None:
    error = failure({"a": "${b}", "b": "x${a}"})
    assert error.problem == "interpolation cycle: ${a} -> ${b} -> ${a}"
    assert error.key == "a"
    assert error.hint == "break the loop by writing one of these values literally"


def test_self_reference_and_reference_to_an_enclosing_table_are_cycles() -> None:
    assert failure({"a": "${a}"}).problem == "interpolation cycle: ${a} -> ${a}"
    assert failure({"t": {"x": "${t}"}}).problem == "interpolation cycle: ${t} -> ${t.x} -> ${t}"


def test_unknown_reference_suggests_the_closest_key() -> None:
    error = failure(
        {"trainer": {"args": {"learning_rate": 1e-5}}, "run": {"name": "${trainer.args.learning_rat}"}},
        {("run", "name"): "top.toml"},
    )
    assert error.problem == "'${trainer.args.learning_rat}' refers to a key that does not exist"
    assert error.file == "top.toml"
    assert error.key == "run.name"
    # best match first; 'trainer.args' is close enough to be offered too (difflib ratio 24/37 > 0.5)
    assert error.hint == "did you mean 'trainer.args.learning_rate'?"


def test_unknown_reference_never_suggests_the_referring_key_or_its_tables() -> None:
    # 'vars.z' and 'vars' are the closest spellings, but referring to them would be a cycle
    error = failure({"vars": {"x": 1, "z": "${vars.q}"}})
    assert error.hint == "did you mean 'vars.x'?"


def test_unknown_reference_without_a_close_key() -> None:
    error = failure({"a": "${zzzzzz}"})
    assert error.hint == "references use the full dotted path from the top of the recipe"


def test_escape_writes_a_literal_reference() -> None:
    values = resolved({"a": 1, "lit": "$${a}", "mixed": "$${a} is ${a}", "plain": "$ {a} and $a"})
    assert values == {"a": 1, "lit": "${a}", "mixed": "${a} is 1", "plain": "$ {a} and $a"}


def test_a_table_cannot_be_embedded_in_text() -> None:
    error = failure({"t": {"x": 1}, "s": "value: ${t}"})
    assert error.problem == "'${t}' is a dict and cannot be embedded in text"
    assert error.key == "s"


def test_error_names_the_file_that_wrote_the_reference(tmp_path: Path) -> None:
    base = tmp_path / "base.toml"
    base.write_text('[run]\nname = "${vars.nam}"\n', encoding="utf-8")
    top = tmp_path / "top.toml"
    top.write_text('extends = ["base"]\n[vars]\nname = "x"\n', encoding="utf-8")
    recipe = load_merged(top)
    with pytest.raises(UserError) as caught:
        interpolate(recipe)
    assert caught.value.file == str(base.resolve())
    assert caught.value.hint == "did you mean 'vars.name'?"


def test_a_dumped_recipe_loads_back_to_the_same_values(tmp_path: Path) -> None:
    from unlearn_cli.recipes import dump_recipe, resolve_recipe

    source = tmp_path / "r.toml"
    source.write_text(
        '[vars]\nx = 1\nlit = "$${vars.x}"\nref = "${vars.x}"\nmixed = "$${vars.x} is ${vars.x}"\n'
        'items = ["$${a}", { t = "$${b}" }]\nmulti = """line one\nline two ${vars.x}"""\n'
        '"${key}" = "keys are not interpolated"\n',
        encoding="utf-8",
    )
    first = resolve_recipe(str(source)).values
    assert first["vars"]["lit"] == "${vars.x}"

    dumped = tmp_path / "dumped.toml"
    dumped.write_text(dump_recipe(first), encoding="utf-8")
    again = resolve_recipe(str(dumped)).values

    assert again == first
    assert again["vars"] == {
        "x": 1,
        "lit": "${vars.x}",
        "ref": 1,
        "mixed": "${vars.x} is 1",
        "items": ["${a}", {"t": "${b}"}],
        "multi": "line one\nline two 1",
        "${key}": "keys are not interpolated",
    }
