"""`unlearn recipe list|show|validate|cp`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unlearn_cli.recipes import resolve_recipe
from unlearn_cli.recipes.loading import packaged_recipe_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Runner = Callable[..., Any]  # returns conftest.CliResult (code, stdout, stderr)
TOFU = packaged_recipe_path("tofu_finetune")
LLAMA = packaged_recipe_path("models/Llama-3.2-1B-Instruct")


def table_rows(text: str) -> dict[str, str]:
    """First column -> second column of a listing as printed when piped (tab-separated lines)."""
    return {cells[0]: cells[1] for cells in (line.split("\t") for line in text.splitlines() if "\t" in line)}


def test_recipe_list(run_unlearn: Runner) -> None:
    result = run_unlearn("recipe", "list")
    assert result.code == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows["tofu_finetune"] == (
        'Fine-tune a model on all of TOFU (split "full") to get the "finetuned target" that unlearning then '
        "starts from."
    )
    assert rows["models/Llama-3.2-1B-Instruct"].startswith(
        "Meta Llama 3.2 1B Instruct: the default TOFU target"
    )
    assert "models/Qwen2.5-7B-Instruct" in rows


def test_recipe_show_prints_resolved_toml_that_parses_back(run_unlearn: Runner) -> None:
    result = run_unlearn(
        "recipe",
        "show",
        "tofu_finetune",
        "run.name=my_run",
        "trainer.args.learning_rate=2e-5",
        "~trainer.args.bf16",
        "vars.note=two words",
        "data.train.TOFU_QA_full.args.hf_args.name=forget05",
    )
    assert result.code == 0, result.stderr
    shown = tomllib.loads(result.stdout)

    assert "extends" not in shown
    assert shown["run"] == {"name": "my_run", "seed": 0}
    assert shown["vars"] == {"note": "two words"}
    assert shown["trainer"]["args"]["learning_rate"] == 2e-5
    assert "bf16" not in shown["trainer"]["args"]
    assert shown["trainer"]["args"]["per_device_train_batch_size"] == 4
    assert shown["data"]["train"]["TOFU_QA_full"]["args"]["hf_args"] == {
        "path": "locuslab/TOFU",
        "name": "forget05",
        "split": "train",
    }
    # from the packaged model recipe that tofu_finetune extends
    assert shown["model"]["model_args"] == {
        "pretrained_model_name_or_path": "meta-llama/Llama-3.2-1B-Instruct",
        "dtype": "bfloat16",
        "attn_implementation": "flash_attention_2",
    }
    expected = resolve_recipe(
        "tofu_finetune",
        [
            "run.name=my_run",
            "trainer.args.learning_rate=2e-5",
            "~trainer.args.bf16",
            "vars.note=two words",
            "data.train.TOFU_QA_full.args.hf_args.name=forget05",
        ],
    )
    assert shown == expected.values


def test_recipe_show_output_is_not_wrapped_when_piped(
    run_unlearn: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    recipe = tmp_path / "r.toml"
    long = "a very long run name " * 8
    recipe.write_text(f'[run]\nname = "{long}"\n[vars]\ntext = "[bold]not markup[/bold] :smile:"\n')
    result = run_unlearn("recipe", "show", str(recipe))
    assert result.code == 0, result.stderr
    assert tomllib.loads(result.stdout) == {
        "run": {"name": long},
        "vars": {"text": "[bold]not markup[/bold] :smile:"},
    }


def test_recipe_show_interpolates(run_unlearn: Runner, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('lr = 1e-5\n[run]\nname = "lr${lr}"\n[vars]\nlr = "${lr}"\nlit = "$${lr}"\n')
    result = run_unlearn("recipe", "show", str(recipe), "lr=0.5")
    assert result.code == 0, result.stderr
    assert tomllib.loads(result.stdout) == {
        "lr": 0.5,
        "run": {"name": "lr0.5"},
        "vars": {"lr": 0.5, "lit": "$${lr}"},  # the literal `${lr}`, escaped so the shown recipe loads back
    }


def test_recipe_show_error(run_unlearn: Runner, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[run]\nname = "${vars.nam}"\n[vars]\nname = "x"\n')
    result = run_unlearn("recipe", "show", str(recipe))
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: {recipe}: key 'run.name': '${{vars.nam}}' refers to a key that does not exist\n"
        "  hint: did you mean 'vars.name'?\n"
    )


def test_recipe_validate_a_valid_toy_recipe(
    run_unlearn: Runner, tmp_path: Path, toy_plugin_dir: Path
) -> None:
    recipe = tmp_path / "toy.toml"
    recipe.write_text(
        'plugins = ["unlearn_toy_plugin"]\n'
        '[run]\nname = "toy"\n'
        '[data.forget.ROWS]\nhandler = "ToyDataset"\nargs = { hf_args = { path = "x" }, mode = "b" }\n'
        "[collator.ToyCollator]\n"
        '[trainer]\nhandler = "toy_trainer"\n'
        "args = { learning_rate = 1e-5 }\nmethod_args = { alpha = 2, steps = 5 }\n"
    )
    result = run_unlearn("recipe", "validate", str(recipe), "run.output_dir=/somewhere/out", "--recipe-only")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith(f"{recipe}: valid\n")
    rows = table_rows(result.stdout)
    assert rows == {
        "data.forget.ROWS": "ToyDataset",
        "collator.ToyCollator": "ToyCollator",
        "trainer": "toy_trainer",
    }
    assert "unlearn_toy_plugin:ToyTrainer" in result.stdout
    assert result.stdout.rstrip().endswith(
        "✓ run 'toy' would write to /somewhere/out (this machine not checked)"
    )


def test_recipe_cp_copies_and_refuses_to_overwrite(run_unlearn: Runner, tmp_path: Path) -> None:
    assert TOFU is not None and LLAMA is not None

    result = run_unlearn("recipe", "cp", "tofu_finetune", str(tmp_path))
    assert result.code == 0, result.stderr
    copied = tmp_path / "tofu_finetune.toml"
    assert copied.read_bytes() == TOFU.read_bytes()
    # its `extends` names a packaged recipe, so the copy resolves anywhere
    assert resolve_recipe(str(copied)).values["model"]["handler"] == "AutoModelForCausalLM"

    again = run_unlearn("recipe", "cp", "tofu_finetune", str(tmp_path))
    assert (again.code, again.stdout) == (2, "")
    assert again.stderr == (
        f"error: {copied} already exists\n"
        "  hint: choose another destination, or pass --force to overwrite it\n"
    )

    copied.write_text("edited")
    forced = run_unlearn("recipe", "cp", "tofu_finetune", str(tmp_path), "--force")
    assert forced.code == 0, forced.stderr
    assert copied.read_bytes() == TOFU.read_bytes()

    named = tmp_path / "mine.toml"
    assert run_unlearn("recipe", "cp", "models/Llama-3.2-1B-Instruct", str(named)).code == 0
    assert named.read_bytes() == LLAMA.read_bytes()


@pytest.mark.parametrize(
    ("name", "destination", "message"),
    [
        (
            "tofu_finetune",
            "missing/dir/x.toml",
            "error: folder {tmp}/missing/dir does not exist\n"
            "  hint: create it first, or copy into an existing folder\n",
        ),
        (
            "tofu_finetun",
            "x.toml",
            "error: recipe 'tofu_finetun' not found: no such file and no packaged recipe of that name\n"
            "  hint: did you mean 'tofu_finetune'?\n",
        ),
    ],
)
def test_recipe_cp_errors(
    run_unlearn: Runner, tmp_path: Path, name: str, destination: str, message: str
) -> None:
    result = run_unlearn("recipe", "cp", name, str(tmp_path / destination))
    assert (result.code, result.stdout, result.stderr) == (2, "", message.format(tmp=tmp_path))
    assert not (tmp_path / destination).exists()


def test_recipe_show_keeps_literal_references_escaped(run_unlearn: Runner, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[vars]\nx = 2\nlit = "$${vars.x}"\nref = "${vars.x}"\ntext = "cost: $${vars.x} = ${vars.x}"\n'
    )
    result = run_unlearn("recipe", "show", str(recipe))
    assert result.code == 0, result.stderr
    assert 'lit = "$${vars.x}"' in result.stdout

    shown = tmp_path / "shown.toml"
    shown.write_text(result.stdout)
    again = resolve_recipe(str(shown))
    assert again.values == resolve_recipe(str(recipe)).values
    assert again.values["vars"] == {"x": 2, "lit": "${vars.x}", "ref": 2, "text": "cost: ${vars.x} = 2"}


def test_recipe_show_does_not_print_replace_markers(run_unlearn: Runner, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('extends = ["tofu_finetune", "models/gemma-7b-it"]\n')
    result = run_unlearn("recipe", "show", str(recipe))
    assert result.code == 0, result.stderr
    shown = tomllib.loads(result.stdout)
    assert shown["model"]["template_args"] == {"apply_chat_template": True}
    assert "_replace_" not in result.stdout


def test_recipe_cp_unwritable_destinations(run_unlearn: Runner, tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    under_file = run_unlearn("recipe", "cp", "tofu_finetune", str(a_file / "x.toml"))
    assert (under_file.code, under_file.stdout, under_file.stderr) == (
        2,
        "",
        f"error: cannot write {a_file / 'x.toml'}: {a_file} is a file, not a folder\n"
        "  hint: choose another destination\n",
    )

    (tmp_path / "tofu_finetune.toml").mkdir()  # --force onto a folder of the copied file's name
    onto_folder = run_unlearn("recipe", "cp", "tofu_finetune", str(tmp_path), "--force")
    assert (onto_folder.code, onto_folder.stdout, onto_folder.stderr) == (
        2,
        "",
        f"error: {tmp_path / 'tofu_finetune.toml'} is a folder\n"
        "  hint: give a file path, or a folder that has no entry of that name\n",
    )


def test_recipe_cp_write_failure_is_a_user_error(
    run_unlearn: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    def denied(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(shutil, "copyfile", denied)  # chmod does not stop root, which runs some CI
    result = run_unlearn("recipe", "cp", "tofu_finetune", str(tmp_path / "x.toml"))
    assert (result.code, result.stdout, result.stderr) == (
        2,
        "",
        f"error: cannot write {tmp_path / 'x.toml'}: Permission denied\n"
        "  hint: choose a destination you can write to\n",
    )
