"""`unlearn train` and `unlearn inspect-data` end to end, through the real CLI, on the built-in tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib

SMALL_DATA = "builtin://fictitious-authors?authors=4&facts=5"
FAST = [
    f'data.train.authors_full.args.hf_args.path="{SMALL_DATA}"',
    "trainer.args.num_train_epochs=12",
    "trainer.args.per_device_train_batch_size=10",
    "trainer.args.logging_steps=4",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One quickstart fine-tune on 20 items, shared by the tests below."""
    from unlearn_cli.pipelines.run import run_training

    output_dir = tmp_path_factory.mktemp("runs") / "finetune"
    run_training("quickstart/finetune", [*FAST, f"run.output_dir={output_dir}"], overwrite=False)
    return output_dir


@pytest.mark.slow
def test_training_saves_everything_a_later_step_needs(trained: Path) -> None:
    for name in ("model.safetensors", "config.json", "tokenizer.json", "recipe.toml", "manifest.json"):
        assert (trained / name).is_file(), name
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["train_items"] == 20
    assert manifest["global_steps"] == 24  # 2 steps per epoch × 12 epochs
    assert manifest["versions"]["torch"] and manifest["started_at"] <= manifest["finished_at"]
    assert manifest["seed"] == 0 and manifest["data_seed"] is None
    recipe = tomllib.loads((trained / "recipe.toml").read_text())
    assert recipe["data"]["train"]["authors_full"]["args"]["hf_args"]["path"] == SMALL_DATA
    assert recipe["run"]["output_dir"] == str(trained)


@pytest.mark.slow
def test_training_learns_the_answers(trained: Path) -> None:
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["answer_nll_before"] > 5.0  # an untrained model over a ~3k vocabulary
    assert manifest["answer_nll_after"] < 0.5 * manifest["answer_nll_before"]
    assert manifest["final_loss"] < manifest["answer_nll_before"]


@pytest.mark.slow
def test_saved_model_reloads_and_reproduces_the_final_nll(trained: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from unlearn_cli.collators.supervised import DataCollatorForSupervisedDataset
    from unlearn_cli.data.qa import QADataset
    from unlearn_cli.data.template import TemplateArgs
    from unlearn_cli.evals.nll import mean_answer_nll

    model = AutoModelForCausalLM.from_pretrained(trained)
    tokenizer = AutoTokenizer.from_pretrained(trained)
    recipe = tomllib.loads((trained / "recipe.toml").read_text())
    dataset = QADataset(
        hf_args=recipe["data"]["train"]["authors_full"]["args"]["hf_args"],
        tokenizer=tokenizer,
        template_args=TemplateArgs.model_validate(recipe["model"]["template_args"]),
        max_length=128,
    )
    nll = mean_answer_nll(model, dataset, DataCollatorForSupervisedDataset(tokenizer))
    manifest = json.loads((trained / "manifest.json").read_text())
    assert nll == pytest.approx(manifest["answer_nll_after"], rel=1e-4)


@pytest.mark.slow
def test_a_non_empty_output_folder_is_refused(trained: Path, run_unlearn) -> None:
    before = (trained / "model.safetensors").read_bytes()
    result = run_unlearn("train", "quickstart/finetune", *FAST, f"run.output_dir={trained}")
    assert result.code == 2
    assert "holds a finished `unlearn train` run" in result.stderr and "--overwrite" in result.stderr
    assert "Traceback" not in result.stderr
    assert (trained / "model.safetensors").read_bytes() == before


def test_train_needs_a_train_split(run_unlearn, tmp_path: Path) -> None:
    result = run_unlearn("train", "quickstart/finetune", "~data.train", f"run.output_dir={tmp_path / 'x'}")
    assert result.code == 2
    assert "trainer 'finetune' needs [data.train.NAME]" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_inspect_data_shows_masks_and_statistics(run_unlearn) -> None:
    result = run_unlearn("inspect-data", "quickstart/finetune", "-n", "1", *FAST[:1])
    assert result.code == 0, result.stderr
    out = result.stdout
    assert "train / authors_full — item 0" in out
    assert "<|assistant|>" in out  # the chat template was applied
    assert "trained]" in out and "tokens" in out
    statistics_line = next(line for line in out.splitlines() if "authors_full" in line and "│" in line)
    cells = [c.strip() for c in statistics_line.split("│") if c.strip()]
    assert cells[:4] == ["train", "authors_full", "-", "20"]


def test_inspect_data_colours_prompt_and_answer_differently() -> None:
    from rich.console import Console

    from unlearn_cli.pipelines.inspect import PROMPT_STYLE, TRAINED_STYLE, render_item

    class CharTokenizer:
        def decode(self, ids: list[int]) -> str:
            return "".join(chr(i) for i in ids)

    item = {"input_ids": [ord(c) for c in "Q?A!"], "labels": [-100, -100, ord("A"), ord("!")]}
    text = render_item(item, CharTokenizer(), marks=False)
    spans = {text.plain[span.start : span.end]: str(span.style) for span in text.spans}
    assert spans["Q?"] == PROMPT_STYLE and spans["A!"] == TRAINED_STYLE
    console = Console(record=True, width=80)
    console.print(text)
    assert "[4 tokens, 2 trained]" in console.export_text()


def test_inspect_data_marks_trained_tokens_without_colour(run_unlearn) -> None:
    result = run_unlearn("inspect-data", "quickstart/finetune", "-n", "1", *FAST[:1])
    assert result.code == 0, result.stderr
    item = result.stdout.split("item 0", 1)[1]
    prompt, trained = item.split("«", 1)
    assert "<|user|>" in prompt and "<|assistant|>" in prompt  # the prompt is not marked
    assert "»" in trained and "<|user|>" not in trained.split("»")[0]  # the answer (and its eos) are
    legend = result.stdout.rsplit("prompt (no loss)", 1)[1]
    header = next(line for line in result.stdout.splitlines() if "no trainable" in line)
    for column in ("items", "min/median/max", "truncated", "no trainable"):
        assert column.split("/")[0] in header and f"{column}:" in legend


def test_inspect_data_rejects_an_unknown_split(run_unlearn) -> None:
    result = run_unlearn("inspect-data", "quickstart/finetune", "--split", "trian")
    assert result.code == 2
    assert "no data split 'trian'" in result.stderr and "did you mean 'train'" in result.stderr


def test_arguments_transformers_rejects_leave_no_output_folder(run_unlearn, tmp_path: Path) -> None:
    target = tmp_path / "never"
    result = run_unlearn(
        "train",
        "quickstart/finetune",
        'trainer.args.lr_scheduler_type="sideways"',
        f"run.output_dir={target}",
    )
    assert result.code == 2
    assert "key 'trainer.args'" in result.stderr and "Traceback" not in result.stderr
    assert not target.exists()


def test_chat_template_mode_needs_a_tokenizer_with_one(run_unlearn, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from unlearn_cli.builtin import resolve_builtin

    tokenizer = AutoTokenizer.from_pretrained(resolve_builtin("builtin://tiny-llama"))
    tokenizer.chat_template = None
    tokenizer.save_pretrained(tmp_path / "plain-tokenizer")
    result = run_unlearn(
        "inspect-data",
        "quickstart/finetune",
        f"model.tokenizer_args.pretrained_model_name_or_path={tmp_path / 'plain-tokenizer'}",
    )
    assert result.code == 2
    assert "key 'model.template_args.apply_chat_template'" in result.stderr
    assert "models/tiny-llama.toml" in result.stderr  # the file that set apply_chat_template
    assert "Traceback" not in result.stderr


def test_dry_run_checks_everything_and_writes_nothing(run_unlearn, tmp_path: Path) -> None:
    target = tmp_path / "dry"
    result = run_unlearn("train", "quickstart/finetune", f"run.output_dir={target}", "--dry-run")
    assert result.code == 0, result.stderr
    assert "would train into" in result.stdout and not target.exists()
    target.mkdir()
    (target / "notes.txt").write_text("x")
    refused = run_unlearn("train", "quickstart/finetune", f"run.output_dir={target}", "--dry-run")
    assert refused.code == 2 and "is not empty" in refused.stderr


@pytest.mark.parametrize(
    ("override", "expected_key"),
    [
        ("data.train.authors_full.handler=QAwithAlternateDataset", "data.train.authors_full.handler"),
        (
            "data.train.authors_full.args.predict_with_generate=true",
            "data.train.authors_full.args.predict_with_generate",
        ),
    ],
)
def test_items_finetuning_cannot_use_are_refused_before_training(
    run_unlearn, tmp_path: Path, override: str, expected_key: str
) -> None:
    result = run_unlearn(
        "train", "quickstart/finetune", *FAST[:1], override, f"run.output_dir={tmp_path / 'x'}"
    )
    assert result.code == 2, result.stderr
    assert f"key '{expected_key}'" in result.stderr and "Traceback" not in result.stderr


def test_a_reporting_integration_that_is_not_installed_is_a_user_error(run_unlearn, tmp_path: Path) -> None:
    result = run_unlearn(
        "train",
        "quickstart/finetune",
        *FAST[:1],
        'trainer.args.report_to=["wandb"]',
        f"run.output_dir={tmp_path / 'x'}",
    )
    assert result.code == 2, result.stderr
    assert "key 'trainer.args.report_to': this run needs the Python package 'wandb'" in result.stderr
    assert "hint: pip install wandb" in result.stderr and "Traceback" not in result.stderr
