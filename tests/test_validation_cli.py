"""Every recipe mistake through the real command line: one clear message, exit code 2, no traceback.

Most cases call the console-script entry point in-process (`run_unlearn`); a few run a real subprocess to
check what a user's shell sees, including `--debug`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TOY_PLUGIN = "unlearn_toy_plugin"  # written by the `toy_plugin_dir` fixture of tests/conftest.py

VALID = f"""plugins = ["{TOY_PLUGIN}"]

[run]
name = "toy"

[data.train.TOY]
handler = "ToyDataset"
args = {{ hf_args = {{ path = "x" }}, max_length = 4 }}

[collator.ToyCollator]
args = {{ padding_side = "left" }}

[trainer]
handler = "toy_trainer"
args = {{ learning_rate = 1e-5, num_train_epochs = 2 }}
method_args = {{ alpha = 0.5 }}
"""

OVERRIDE = "command-line override"
Runner = Callable[..., Any]  # returns conftest.CliResult (code, stdout, stderr)


@pytest.fixture
def recipe(tmp_path: Path, toy_plugin_dir: Path) -> Callable[..., Path]:
    def write(text: str = VALID, name: str = "r.toml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path.resolve()

    return write


def user_error(result: Any) -> str:
    """The message of a user error, after checking how it was reported."""
    assert result.code == 2, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    return result.stderr.removeprefix("error: ").rstrip("\n")


def validate_error(run_unlearn: Runner, path: Path | str, *overrides: str) -> str:
    return user_error(run_unlearn("recipe", "validate", str(path), *overrides))


def test_valid_toy_recipe_passes(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    result = run_unlearn("recipe", "validate", str(recipe()), "--recipe-only")
    assert result.code == 0, result.stderr
    assert "✓ run 'toy' would write to outputs/toy (this machine not checked)" in result.stdout


# --- unknown handlers ---------------------------------------------------------------------------------------


def test_unknown_dataset_handler_in_the_file(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe(VALID.replace('handler = "ToyDataset"', 'handler = "ToyDatset"'))
    message = validate_error(run_unlearn, path)
    first, hint = message.split("\n")
    assert first == f"{path}: key 'data.train.TOY.handler': unknown dataset handler 'ToyDatset'"
    assert hint.startswith("  hint: did you mean 'ToyDataset'")
    assert hint.endswith("(see `unlearn registry list`)")


def test_unknown_handler_set_on_the_command_line_blames_the_command_line(
    run_unlearn: Runner, recipe: Callable[..., Path]
) -> None:
    path = recipe()
    message = validate_error(
        run_unlearn,
        path,
        "data.train.TOY.handler=ToyDatset",
        "trainer.handler=toy_trainr",
        "model.handler=ToyModle",
    )
    lines = message.split("\n")
    assert lines[0] == f"3 problems in recipe {path}:"
    assert lines[1] == f"  - {OVERRIDE}: key 'model.handler': unknown model handler 'ToyModle'"
    assert lines[3] == f"  - {OVERRIDE}: key 'data.train.TOY.handler': unknown dataset handler 'ToyDatset'"
    assert lines[5] == f"  - {OVERRIDE}: key 'trainer.handler': unknown trainer handler 'toy_trainr'"


def test_dataset_without_handler_whose_name_is_not_a_handler(
    run_unlearn: Runner, recipe: Callable[..., Path]
) -> None:
    path = recipe(VALID.replace('[data.train.TOY]\nhandler = "ToyDataset"\n', "[data.train.MY_ROWS]\n"))
    first, hint = validate_error(run_unlearn, path).split("\n")
    assert first == (
        f"{path}: key 'data.train.MY_ROWS.handler': no `handler` given and 'MY_ROWS' is not a registered "
        "dataset handler"
    )
    assert hint.startswith('  hint: add `handler = "..."`; registered: ')
    assert "ToyDataset" in hint


def test_unknown_trainer_handler(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe(VALID.replace('handler = "toy_trainer"', 'handler = "toy_trainr"'))
    first, hint = validate_error(run_unlearn, path).split("\n")
    assert first == f"{path}: key 'trainer.handler': unknown trainer handler 'toy_trainr'"
    assert hint.startswith("  hint: did you mean 'toy_trainer'")


def test_unknown_model_handler(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe(VALID + '\n[model]\nhandler = "ToyModle"\nmodel_args = { name = "m" }\n')
    first, hint = validate_error(run_unlearn, path).split("\n")
    assert first == f"{path}: key 'model.handler': unknown model handler 'ToyModle'"
    assert hint.startswith("  hint: did you mean 'ToyModel'")


def test_model_template_args_unknown_key(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe(
        VALID + '\n[model]\nhandler = "ToyModel"\nmodel_args = { name = "m" }\n'
        '[model.template_args]\nsystem_promt = "hi"\n'
    )
    first, hint = validate_error(run_unlearn, path).split("\n")
    assert first == (
        f"{path}: key 'model.template_args.system_promt': unknown argument 'system_promt' for template_args"
    )
    assert hint.startswith("  hint: did you mean 'system_prompt'")


# --- trainer.args and method_args ---------------------------------------------------------------------------


def test_unknown_training_argument_suggests_the_training_arguments_field(
    run_unlearn: Runner, recipe: Callable[..., Path]
) -> None:
    path = recipe(VALID.replace("learning_rate = 1e-5", "learnin_rate = 1e-5"))
    first, hint = validate_error(run_unlearn, path).split("\n")
    assert first == (
        f"{path}: key 'trainer.args.learnin_rate': unknown argument 'learnin_rate' for "
        "transformers.TrainingArguments"
    )
    assert hint.startswith("  hint: did you mean 'learning_rate'")


def test_unknown_training_argument_without_close_match_points_to_the_reference(
    run_unlearn: Runner, recipe: Callable[..., Path]
) -> None:
    path = recipe()
    message = validate_error(run_unlearn, path, "trainer.args.zzqqxx=1")
    assert message == (
        f"{OVERRIDE}: key 'trainer.args.zzqqxx': unknown argument 'zzqqxx' for "
        "transformers.TrainingArguments\n"
        "  hint: see the fields of transformers.TrainingArguments in its documentation "
        "(https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments), "
        "or `unlearn registry show finetune`"
    )


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        (
            "trainer.args.report_to=5",
            "Input should be a valid string or list of strings (got int 5)",
        ),
        (
            "trainer.args.report_to=[1]",
            "Input should be a valid string or list of strings (got list [1])",
        ),
        (
            "trainer.args.lr_scheduler_type=3",
            "Input should be a valid SchedulerType or string (got int 3)",
        ),
    ],
)
def test_union_typed_training_argument_is_one_problem_at_its_key(
    run_unlearn: Runner, recipe: Callable[..., Path], override: str, problem: str
) -> None:
    message = validate_error(run_unlearn, recipe(), override)
    first, hint = message.split("\n")
    assert first == f"{OVERRIDE}: key '{override.split('=')[0]}': {problem}"
    assert hint.startswith("  hint: expected ")


def test_deleting_the_trainer_handler_blames_the_deletion(
    run_unlearn: Runner, recipe: Callable[..., Path]
) -> None:
    message = validate_error(run_unlearn, recipe(), "~trainer.handler")
    assert message.startswith(
        f"{OVERRIDE}: key 'trainer.handler': missing required argument 'handler' for [trainer]"
    )


def test_extends_cannot_be_overridden(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    message = validate_error(run_unlearn, recipe(), 'extends=["tofu_finetune"]')
    assert message.startswith(
        "command line: key 'extends': `extends` cannot be overridden on the command line"
    )


def test_output_dir_is_managed_by_the_cli(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    message = validate_error(run_unlearn, recipe(), "trainer.args.output_dir=out")
    assert message == (
        f"{OVERRIDE}: key 'trainer.args.output_dir': 'output_dir' is managed by unlearn-cli\n"
        "  hint: set `run.output_dir` instead (the CLI passes it to the trainer)"
    )


def test_unknown_method_argument_suggests_the_keyword_only_parameter(
    run_unlearn: Runner, recipe: Callable[..., Path]
) -> None:
    path = recipe(VALID.replace("alpha = 0.5", "alpah = 0.5"))
    message = validate_error(run_unlearn, path)
    assert message == (
        f"{path}: key 'trainer.method_args.alpah': unknown argument 'alpah' for trainer 'toy_trainer' "
        "(its method_args are its keyword-only parameters)\n"
        "  hint: did you mean 'alpha'?"
    )


def test_finetune_takes_no_method_args(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe(VALID.replace('handler = "toy_trainer"', 'handler = "finetune"').replace("alpha", "beta"))
    message = validate_error(run_unlearn, path)
    assert message == (
        f"{path}: key 'trainer.method_args.beta': unknown argument 'beta' for trainer 'finetune' "
        "(its method_args are its keyword-only parameters)\n"
        "  hint: valid arguments: none"
    )


# --- wrong types, missing and injected arguments ------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key", "problem", "hint"),
    [
        (
            "data.train.TOY.args.max_length=long",
            "data.train.TOY.args.max_length",
            "Input should be a valid integer, unable to parse string as an integer (got str 'long')",
            "expected int",
        ),
        (
            "data.train.TOY.args.mode=c",
            "data.train.TOY.args.mode",
            "Input should be 'a' or 'b' (got str 'c')",
            "expected Literal['a', 'b']",
        ),
        (
            "trainer.method_args.alpha=[1]",
            "trainer.method_args.alpha",
            "Input should be a valid number (got list [1])",
            "expected float",
        ),
        (
            "trainer.args.learning_rate=fast",
            "trainer.args.learning_rate",
            "Input should be a valid number, unable to parse string as a number (got str 'fast')",
            "expected float",
        ),
        (
            "run.seed=first",
            "run.seed",
            "Input should be a valid integer, unable to parse string as an integer (got str 'first')",
            "expected int",
        ),
    ],
)
def test_wrong_value_type(
    run_unlearn: Runner, recipe: Callable[..., Path], override: str, key: str, problem: str, hint: str
) -> None:
    message = validate_error(run_unlearn, recipe(), override)
    assert message == f"{OVERRIDE}: key '{key}': {problem}\n  hint: {hint}"


def test_wrong_type_written_in_a_base_names_the_base_file(
    run_unlearn: Runner, recipe: Callable[..., Path]
) -> None:
    base = recipe('[data.train.TOY.args]\nmax_length = "long"\n', name="bases/base.toml")
    top = recipe('extends = ["bases/base"]\n' + VALID.replace(", max_length = 4", ""))
    message = validate_error(run_unlearn, top)
    assert message.startswith(
        f"{base}: key 'data.train.TOY.args.max_length': Input should be a valid integer"
    )


def test_missing_required_argument(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe(VALID.replace('hf_args = { path = "x" }, ', ""))
    message = validate_error(run_unlearn, path)
    assert message == (
        f"{path}: key 'data.train.TOY.args.hf_args': missing required argument 'hf_args' for dataset handler "
        "'ToyDataset'\n"
        "  hint: add `hf_args = ...` (dict)"
    )
    # deleted on the command line: the deletion is to blame, not the file that had set it
    deleted = validate_error(run_unlearn, recipe(), "~data.train.TOY.args.hf_args")
    assert deleted.startswith(f"{OVERRIDE}: key 'data.train.TOY.args.hf_args': missing required argument")


def test_injected_argument_cannot_be_set(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    message = validate_error(run_unlearn, recipe(), "collator.ToyCollator.args.tokenizer=gpt2")
    assert message == (
        f"{OVERRIDE}: key 'collator.ToyCollator.args.tokenizer': 'tokenizer' is provided by the pipeline and "
        "cannot be set in a recipe\n"
        "  hint: remove `tokenizer` from this table"
    )


def test_all_problems_are_reported_together(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe()
    message = validate_error(
        run_unlearn, path, "run.seed=x", "trainer.method_args.alpah=1", "data.train.TOY.args.max_len=3"
    )
    lines = message.split("\n")
    assert lines[0] == f"3 problems in recipe {path}:"
    assert lines[1].startswith(f"  - {OVERRIDE}: key 'run.seed': Input should be a valid integer")
    assert lines[3] == (
        f"  - {OVERRIDE}: key 'data.train.TOY.args.max_len': unknown argument 'max_len' for dataset handler "
        "'ToyDataset'"
    )
    assert lines[4] == "      hint: did you mean 'max_length'?"
    assert lines[5].startswith(f"  - {OVERRIDE}: key 'trainer.method_args.alpah': unknown argument 'alpah'")
    assert len(lines) == 7


# --- recipe structure ---------------------------------------------------------------------------------------


def test_unknown_top_level_section(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe(VALID + "\n[trainr.args]\nx = 1\n")
    assert validate_error(run_unlearn, path) == (
        f"{path}: key 'trainr': unknown section [trainr]\n  hint: did you mean 'trainer'?"
    )


def test_unknown_section_added_by_an_override_blames_the_command_line(
    run_unlearn: Runner, recipe: Callable[..., Path]
) -> None:
    assert validate_error(run_unlearn, recipe(), "zzz.x=1") == (
        f"{OVERRIDE}: key 'zzz': unknown section [zzz]\n"
        "  hint: sections are run, model, data, collator, trainer, eval, vars; "
        "put free tables of your own under [vars]"
    )


def test_two_collators(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe()
    assert validate_error(run_unlearn, path, "collator.Other.handler=ToyCollator") == (
        f"{path}: key 'collator': only one collator may be given, found ToyCollator, Other\n"
        "  hint: remove all but one (`~collator.NAME` on the command line deletes one)"
    )


def test_anchor_must_name_a_split_the_recipe_has(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    assert validate_error(run_unlearn, recipe(), "data.anchor=forget") == (
        f"{OVERRIDE}: key 'data.anchor': anchor is 'forget' but the recipe has no forget data\n"
        "  hint: add [data.forget.NAME], or anchor on the other split"
    )


def test_anchor_is_forget_or_retain(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    assert validate_error(run_unlearn, recipe(), "data.anchor=train").startswith(
        f"{OVERRIDE}: key 'data.anchor': must be 'forget' or 'retain', got 'train'\n"
    )


def test_plugin_that_cannot_be_imported(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe(
        VALID.replace(f'plugins = ["{TOY_PLUGIN}"]', f'plugins = ["{TOY_PLUGIN}", "no_such_plugin_x"]')
    )
    assert validate_error(run_unlearn, path) == (
        f"{path}: key 'plugins[1]': cannot import plugin module 'no_such_plugin_x': ModuleNotFoundError: "
        "No module named 'no_such_plugin_x'\n"
        "  hint: the module must be importable (installed, or on PYTHONPATH) "
        "and register its components with @register(...)"
    )


def test_plugins_must_be_a_list_of_names(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe(VALID.replace(f'plugins = ["{TOY_PLUGIN}"]', f'plugins = "{TOY_PLUGIN}"'))
    assert validate_error(run_unlearn, path) == (
        f"{path}: key 'plugins': `plugins` must be a list of module names\n"
        '  hint: e.g. plugins = ["my_package.my_components"]'
    )


# --- files, syntax, extends, overrides, interpolation -------------------------------------------------------


def test_missing_recipe_file(run_unlearn: Runner, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert validate_error(run_unlearn, missing) == (
        f"recipe '{missing}' not found: no such file and no packaged recipe of that name\n"
        "  hint: give a path to a .toml file, or a packaged recipe name (see `unlearn recipe list`)"
    )


def test_a_folder_given_as_the_recipe(run_unlearn: Runner, tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    assert validate_error(run_unlearn, tmp_path / "recipes") == (
        f"'{tmp_path / 'recipes'}' is a folder, not a recipe file\n"
        "  hint: give one of the .toml files inside it"
    )


def test_a_recipe_that_is_not_utf8(run_unlearn: Runner, tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_bytes(b"# caf\xe9\n")
    assert validate_error(run_unlearn, path) == (
        f"{path}: not UTF-8 text: invalid byte 0xe9 at byte offset 5 (line 1)\n"
        "  hint: recipes are TOML files, which must be UTF-8; re-save the file as UTF-8"
    )


def test_misspelt_packaged_recipe(run_unlearn: Runner) -> None:
    assert validate_error(run_unlearn, "tofu_finetun") == (
        "recipe 'tofu_finetun' not found: no such file and no packaged recipe of that name\n"
        "  hint: did you mean 'tofu_finetune'?"
    )


def test_missing_extends_target(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe('extends = ["base/missing"]\n' + VALID)
    first, hint = validate_error(run_unlearn, path).split("\n")
    assert first == (
        f"{path}: key 'extends[0]': extends target 'base/missing' not found (looked for "
        f"{path.parent / 'base' / 'missing'} and a packaged recipe of that name)"
    )
    assert hint == (
        "  hint: paths are relative to the recipe's folder; "
        "packaged names are listed by `unlearn recipe list`"
    )


def test_extends_cycle(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    a = recipe('extends = ["b"]\n', name="a.toml")
    b = recipe('extends = ["a"]\n', name="b.toml")
    assert validate_error(run_unlearn, a) == (
        f"{a}: key 'extends': `extends` forms a cycle: {a} -> {b} -> {a}\n"
        "  hint: a recipe cannot extend itself, directly or through its bases: remove one of these extends"
    )


def test_toml_syntax_error_with_line_and_column(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe(VALID.replace('name = "toy"', "name = toy"))
    assert validate_error(run_unlearn, path) == (
        f"{path}: TOML syntax error: Invalid value (at line 4, column 8)\n"
        "  hint: check quoting, brackets and `key = value` syntax on that line (strings need quotes)"
    )


def test_override_without_equals_sign(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    assert validate_error(run_unlearn, recipe(), "run.name") == (
        "command line: override 'run.name' has no '='\n"
        "  hint: overrides look like `trainer.args.learning_rate=1e-5`; prefix a key with ~ to delete it"
    )


def test_interpolation_errors(run_unlearn: Runner, recipe: Callable[..., Path]) -> None:
    path = recipe(VALID.replace('name = "toy"', 'name = "${run.seed}"\nseed = "${run.name}"'))
    assert validate_error(run_unlearn, path) == (
        f"{path}: key 'run.name': interpolation cycle: ${{run.name}} -> ${{run.seed}} -> ${{run.name}}\n"
        "  hint: break the loop by writing one of these values literally"
    )


# --- what a shell sees --------------------------------------------------------------------------------------


def test_real_process_prints_one_message_and_exits_2(
    run_unlearn_subprocess: Runner, recipe: Callable[..., Path], toy_plugin_dir: Path
) -> None:
    path = recipe(VALID.split("[trainer]")[0])  # no trainer: the subprocess needs no transformers import
    result = run_unlearn_subprocess(
        "recipe", "validate", str(path), "data.train.TOY.args.mode=c", pythonpath=[toy_plugin_dir]
    )
    assert user_error(result) == (
        f"{OVERRIDE}: key 'data.train.TOY.args.mode': Input should be 'a' or 'b' (got str 'c')\n"
        "  hint: expected Literal['a', 'b']"
    )


@pytest.mark.parametrize(("flag", "env"), [("--debug", {}), (None, {"UNLEARN_DEBUG": "1"})])
def test_debug_shows_the_traceback(
    run_unlearn_subprocess: Runner, tmp_path: Path, flag: str | None, env: dict[str, str]
) -> None:
    args = [flag] if flag else []
    result = run_unlearn_subprocess(*args, "recipe", "validate", str(tmp_path / "nope.toml"), env=env)
    assert result.code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "unlearn_cli.errors.UserError: recipe '" in result.stderr
    assert "locate_recipe" in result.stderr
