"""Recipes are checked against the trainer's contract before anything heavy loads, through the real CLI."""

from __future__ import annotations

from pathlib import Path

OVERRIDE = "command-line override"
UNLEARN = "quickstart/unlearn"


def _error(run_unlearn, *args: str) -> str:
    """The error message of a failing command (after any warnings about unused knobs)."""
    if args[:2] == ("recipe", "validate"):
        args = (*args, "--recipe-only")  # the recipe alone: the quickstart fine-tune need not exist
    result = run_unlearn(*args)
    assert result.code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "error: " in result.stderr
    return result.stderr[result.stderr.index("error: ") :].removeprefix("error: ").strip()


def test_a_method_without_forget_data_names_the_missing_section(run_unlearn) -> None:
    message = _error(run_unlearn, "recipe", "validate", UNLEARN, "~data.forget", "~data.anchor")
    assert message == (
        f"{OVERRIDE}: key 'data.forget': trainer 'NPO' needs [data.forget.NAME] but the recipe has no forget "
        'data\n  hint: add [data.forget.NAME] with handler = "QADataset" and its args, or extend a recipe '
        "that has it (see `unlearn recipe list`)"
    )


def test_a_method_with_a_retain_term_needs_retain_data(run_unlearn) -> None:
    message = _error(run_unlearn, "recipe", "validate", UNLEARN, "~data.retain")
    assert message.startswith(f"{OVERRIDE}: key 'data.retain': trainer 'NPO' needs [data.retain.NAME]")


def test_gradient_ascent_needs_no_retain_data(run_unlearn) -> None:
    result = run_unlearn(
        "recipe",
        "validate",
        UNLEARN,
        "~data.retain",
        "trainer.handler=GradAscent",
        "~trainer.method_args",
        "--recipe-only",
    )
    assert result.code == 0, result.stderr


def test_unlearning_reads_no_train_split(run_unlearn) -> None:
    message = _error(
        run_unlearn,
        "recipe",
        "validate",
        UNLEARN,
        "data.train.extra.handler=QADataset",
        'data.train.extra.args.hf_args={path="builtin://fictitious-authors", name="full", split="train"}',
    )
    assert message.startswith(
        f"{OVERRIDE}: key 'data.train': trainer 'NPO' does not read [data.train]; it reads [data.forget], "
        "[data.retain], [data.eval]"
    )
    assert "[data.forget.NAME]" in message


def test_fine_tuning_reads_no_forget_split(run_unlearn) -> None:
    message = _error(run_unlearn, "recipe", "validate", "quickstart/finetune", "data.forget=${data.train}")
    assert "trainer 'finetune' does not read [data.forget]" in message
    assert "`unlearn unlearn`" in message


def test_a_setting_the_method_cannot_work_without_is_refused(run_unlearn) -> None:
    message = _error(run_unlearn, "recipe", "validate", UNLEARN, "trainer.args.remove_unused_columns=true")
    assert message == (
        f"{OVERRIDE}: key 'trainer.args.remove_unused_columns': trainer 'NPO' needs "
        "remove_unused_columns = false\n  hint: remove `remove_unused_columns` from [trainer.args]: the "
        "trainer sets it"
    )


def test_injected_pieces_cannot_be_set_from_a_recipe(run_unlearn) -> None:
    for name in ("reference", "model", "method_args"):
        message = _error(run_unlearn, "recipe", "validate", UNLEARN, f"trainer.method_args.{name}=1")
        key = f"trainer.method_args.{name}"
        assert message.startswith(
            f"{OVERRIDE}: key '{key}': unknown argument '{name}' for trainer 'NPO' method_args"
        )


def test_method_args_are_typed_and_ranged(run_unlearn) -> None:
    message = _error(run_unlearn, "recipe", "validate", UNLEARN, "trainer.method_args.beta=0")
    assert message.startswith(f"{OVERRIDE}: key 'trainer.method_args.beta': beta must be greater than 0")
    message = _error(run_unlearn, "recipe", "validate", UNLEARN, 'trainer.method_args.retain_loss_type="L2"')
    assert "retain_loss_type" in message and "'NLL' or 'KL'" in message


def test_the_anchor_is_forget_or_retain(run_unlearn) -> None:
    assert run_unlearn("recipe", "validate", UNLEARN, 'data.anchor="retain"', "--recipe-only").code == 0
    message = _error(run_unlearn, "recipe", "validate", UNLEARN, 'data.anchor="both"')
    assert message.startswith(f"{OVERRIDE}: key 'data.anchor': must be 'forget' or 'retain', got 'both'")


def test_each_command_runs_its_own_kind_of_trainer(run_unlearn, tmp_path: Path) -> None:
    message = _error(run_unlearn, "train", UNLEARN, f"run.output_dir={tmp_path / 'a'}")
    assert message.endswith(
        "key 'trainer.handler': trainer 'NPO' is an unlearning method; `unlearn train` runs fine-tuning\n"
        "  hint: run it with `unlearn unlearn ...`"
    )
    message = _error(run_unlearn, "unlearn", "quickstart/finetune", f"run.output_dir={tmp_path / 'b'}")
    assert "trainer 'finetune' is a fine-tuning trainer; `unlearn unlearn` runs unlearning methods" in message
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_unlearn_dry_run_checks_without_touching_weights(run_unlearn, tmp_path: Path) -> None:
    result = run_unlearn(
        "unlearn",
        UNLEARN,
        "finetuned_model=builtin://tiny-llama",
        f"run.output_dir={tmp_path / 'run'}",
        "--dry-run",
    )
    assert result.code == 0, result.stderr
    assert "recipe valid; would unlearn into" in result.stdout
    assert not (tmp_path / "run").exists()


def test_registry_show_gives_a_methods_arguments_and_contract(run_unlearn) -> None:
    result = run_unlearn("registry", "show", "NPO")
    assert result.code == 0, result.stderr
    for text in ("trainer 'NPO' — method_args", "beta", "0.1", "ref_log_probs", "run with: unlearn unlearn"):
        assert text in result.stdout, text
    assert "reads: [data.forget], [data.retain]" in result.stdout
    assert "injected by the container: method_args, reference" in result.stdout
