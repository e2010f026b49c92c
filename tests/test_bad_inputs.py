"""The bad-input matrix, each case through the real command line: one message naming the file, the key, what
is wrong and a fix; exit code 2; no traceback; nothing of the user's touched (the output folder is never
created, data files are only read). docs/troubleshooting.md lists these messages."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SMALL = "builtin://fictitious-authors?authors=4&facts=5"
QUICK = "quickstart/finetune"
FILE = "recipes/quickstart/finetune.toml"
OVERRIDE = "command-line override"
FAST = [f'data.train.authors_full.args.hf_args.path="{SMALL}"', "trainer.args.num_train_epochs=1"]
Runner = Callable[..., Any]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def error_of(result: Any, out: Path | None = None) -> str:
    """The message of a user error after checking how it was reported and that nothing was written."""
    assert result.code == 2, result
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    text = result.stderr[result.stderr.index("error: ") :]
    assert "hint: " in text, text  # every message says how to fix it
    if out is not None:
        assert not out.exists()
    return text


def dry_run(run_unlearn: Runner, out: Path, *overrides: str, recipe: str = QUICK) -> str:
    return error_of(run_unlearn("train", recipe, *overrides, f"run.output_dir={out}", "--dry-run"), out)


def train(
    run_unlearn: Runner, out: Path, *overrides: str, command: str = "train", recipe: str = QUICK
) -> str:
    fast = FAST if command == "train" else []
    return error_of(run_unlearn(command, recipe, *fast, *overrides, f"run.output_dir={out}"), out)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the recipe file itself --------------------------------------------------------------------------------


def test_toml_syntax_error(run_unlearn: Runner, tmp_path: Path, out: Path) -> None:
    recipe = write(tmp_path / "r.toml", 'extends = ["quickstart/finetune"]\n[run]\nname = unquoted\n')
    message = dry_run(run_unlearn, out, recipe=str(recipe))
    assert message.startswith(f"error: {recipe}: TOML syntax error: ")
    assert "line 3" in message


@pytest.mark.parametrize(
    ("override", "key", "problem"),
    [
        ("trainner.handler=finetune", "trainner", "unknown section [trainner]"),
        ("extend=1", "extend", "unknown top-level key 'extend'"),
        ("run.nmae=x", "run.nmae", "unknown argument 'nmae' for [run]"),
        ("model.model_arg={}", "model.model_arg", "unknown argument 'model_arg' for [model]"),
        (
            "model.model_args.dtyp=float32",
            "model.model_args.dtyp",
            "unknown key 'dtyp' in [model.model_args]",
        ),
        ("model.tokenizer_args.use_fats=true", "model.tokenizer_args.use_fats", "unknown key 'use_fats'"),
        ("model.template_args.system_promt=x", "model.template_args.system_promt", "unknown argument"),
        ("data.ancor=forget", "data.ancor", "unknown key 'ancor' in [data]"),
        (
            "data.train.authors_full.hanlder=x",
            "data.train.authors_full.hanlder",
            "unknown argument 'hanlder'",
        ),
        ("data.train.authors_full.args.max_lenght=5", "data.train.authors_full.args.max_lenght", "unknown"),
        (
            "collator.DataCollatorForSupervisedDataset.args.pad=1",
            "collator.DataCollatorForSupervisedDataset.args.pad",
            "unknown",
        ),
        ("trainer.arg={}", "trainer.arg", "unknown argument 'arg' for [trainer]"),
        ("trainer.args.learnig_rate=1e-5", "trainer.args.learnig_rate", "unknown argument 'learnig_rate'"),
        ("trainer.method_args.gamma=1", "trainer.method_args.gamma", "unknown argument 'gamma'"),
    ],
)
def test_unknown_key_at_every_level(
    run_unlearn: Runner, out: Path, override: str, key: str, problem: str
) -> None:
    message = dry_run(run_unlearn, out, override)
    assert f"error: {OVERRIDE}: key '{key}': {problem}" in message


@pytest.mark.parametrize(
    ("override", "key", "problem"),
    [
        (
            "trainer.args.learning_rate=-1e-3",
            "trainer.args.learning_rate",
            "learning_rate must be at least 0, got -0.001",
        ),
        (
            "trainer.args.per_device_train_batch_size=0",
            "trainer.args.per_device_train_batch_size",
            "must be at least 1, got 0",
        ),
        (
            "trainer.args.gradient_accumulation_steps=0",
            "trainer.args.gradient_accumulation_steps",
            "must be at least 1, got 0",
        ),
        ("trainer.args.num_train_epochs=0", "trainer.args.num_train_epochs", "must be greater than 0, got 0"),
        ("trainer.args.max_steps=0", "trainer.args.max_steps", "max_steps must be at least 1"),
        (
            "data.train.authors_full.args.max_length=-5",
            "data.train.authors_full.args.max_length",
            "max_length must be at least 1, got -5",
        ),
        ("run.seed=-1", "run.seed", "seed must be at least 0"),
        ("run.name=''", "run.name", "at least 1 character"),
        ("trainer.args.learning_rate=nan", "trainer.args.learning_rate", "nan is not a usable value"),
    ],
)
def test_out_of_range_values(run_unlearn: Runner, out: Path, override: str, key: str, problem: str) -> None:
    message = dry_run(run_unlearn, out, override)
    assert f"key '{key}'" in message and problem in message


def test_all_range_problems_are_reported_together(run_unlearn: Runner, out: Path) -> None:
    message = dry_run(
        run_unlearn, out, "trainer.args.learning_rate=-1", "trainer.args.per_device_train_batch_size=0"
    )
    assert message.startswith("error: 2 problems in recipe ")


def test_wrong_type(run_unlearn: Runner, out: Path) -> None:
    message = dry_run(run_unlearn, out, 'trainer.args.per_device_train_batch_size="lots"')
    assert (
        f"error: {OVERRIDE}: key 'trainer.args.per_device_train_batch_size': Input should be a valid integer"
        in message
    )


def test_missing_required(run_unlearn: Runner, out: Path) -> None:
    message = dry_run(run_unlearn, out, "~trainer.handler")
    assert "key 'trainer.handler': missing required argument 'handler' for [trainer]" in message


@pytest.mark.parametrize(
    ("override", "kind"),
    [
        ("model.handler=AutoModelForCausalLMM", "model"),
        ("data.train.authors_full.handler=QADatset", "dataset"),
        ("collator.DataCollatorForSupervisedDataset.handler=Collator", "collator"),
        ("trainer.handler=finetun", "trainer"),
    ],
)
def test_unknown_handler_of_each_kind(run_unlearn: Runner, out: Path, override: str, kind: str) -> None:
    key, name = override.split("=")
    message = dry_run(run_unlearn, out, override)
    assert f"error: {OVERRIDE}: key '{key}': unknown {kind} handler '{name}'" in message


def test_interpolation_cycle_and_unknown_reference(run_unlearn: Runner, tmp_path: Path, out: Path) -> None:
    cycle = write(tmp_path / "c.toml", 'extends = ["quickstart/finetune"]\na = "${b}"\nb = "${a}"\n')
    assert "interpolation cycle: ${a} -> ${b} -> ${a}" in dry_run(run_unlearn, out, recipe=str(cycle))
    unknown = write(tmp_path / "u.toml", 'extends = ["quickstart/finetune"]\n[run]\nname = "${vars.nme}"\n')
    message = dry_run(run_unlearn, out, recipe=str(unknown))
    assert f"error: {unknown}: key 'run.name': '${{vars.nme}}' refers to a key that does not exist" in message


def test_extends_cycle(run_unlearn: Runner, tmp_path: Path, out: Path) -> None:
    write(tmp_path / "a.toml", 'extends = ["b.toml"]\n')
    write(tmp_path / "b.toml", 'extends = ["a.toml"]\n')
    message = dry_run(run_unlearn, out, recipe=str(tmp_path / "a.toml"))
    assert "key 'extends': `extends` forms a cycle" in message


def test_a_plugin_module_that_does_not_import_shows_its_own_error(
    run_unlearn: Runner, tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path / "broken_plugin.py", "import numpy\nraise ValueError('the plugin is broken: no config')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    message = dry_run(run_unlearn, out, 'plugins=["broken_plugin"]')
    assert (
        "key 'plugins[0]': cannot import plugin module 'broken_plugin': ValueError: the plugin is broken"
        in message
    )


UNRESOLVABLE_HINTS = '''from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unlearn_cli.registry import register

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@register("dataset", "HintedDataset")
class HintedDataset:
    """A plugin dataset whose tokenizer hint only type checkers can resolve."""

    def __init__(self, hf_args: dict, tokenizer: PreTrainedTokenizerBase, template_args: Any = None,
                 max_length: int = 8) -> None:
        self.hf_args = hf_args
'''


def test_unresolvable_type_hints_still_check_the_other_arguments(
    run_unlearn: Runner, tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "hinted_plugin.py", UNRESOLVABLE_HINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    message = dry_run(
        run_unlearn,
        out,
        'plugins=["hinted_plugin"]',
        "data.train.authors_full.handler=HintedDataset",
        "~data.train.authors_full.args.question_key",
        "~data.train.authors_full.args.answer_key",
        'data.train.authors_full.args.max_length="lots"',
    )
    assert "key 'data.train.authors_full.args.max_length': Input should be a valid integer" in message


# --- this machine: paths, hub, output folder, hardware -----------------------------------------------------


def test_missing_empty_and_unreadable_data_files(run_unlearn: Runner, tmp_path: Path, out: Path) -> None:
    missing = dry_run(run_unlearn, out, 'data.train.authors_full.args.hf_args={path = "nope.jsonl"}')
    assert "key 'data.train.authors_full.args.hf_args.path': data file not found: nope.jsonl" in missing
    assert "relative paths are read from the working directory" in missing
    empty = write(tmp_path / "empty.jsonl", "")
    message = dry_run(run_unlearn, out, f'data.train.authors_full.args.hf_args={{path = "{empty}"}}')
    assert f"data file {empty} is empty" in message


def test_a_model_folder_without_weights_or_tokenizer(run_unlearn: Runner, tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    write(folder / "config.json", "{}")
    message = dry_run(
        run_unlearn,
        out,
        f"model.model_args.pretrained_model_name_or_path={folder}",
        f"model.tokenizer_args.pretrained_model_name_or_path={folder}",
    )
    assert f"model folder '{folder}' holds no weights (found: config.json)" in message
    assert f"folder '{folder}' holds no tokenizer" in message


def test_a_missing_local_model_folder(run_unlearn: Runner, out: Path) -> None:
    message = dry_run(run_unlearn, out, "model.model_args.pretrained_model_name_or_path=./my-finetune")
    assert (
        "key 'model.model_args.pretrained_model_name_or_path': model folder './my-finetune' does not exist"
        in message
    )


def test_a_hub_id_while_offline_fails_at_once(run_unlearn: Runner, out: Path) -> None:
    message = dry_run(run_unlearn, out, "model.model_args.pretrained_model_name_or_path=some-org/some-model")
    assert (
        "'some-org/some-model' is not a local folder and not in the Hugging Face cache, and HF_HUB_OFFLINE"
        in message
    )
    assert "huggingface-cli download some-org/some-model" in message
    assert f"if you meant a local folder, nothing is at {Path.cwd() / 'some-org' / 'some-model'}" in message


def test_a_hub_id_with_the_hub_unreachable_fails_at_once(
    run_unlearn: Runner, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlearn_cli.recipes import machine

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    machine.hub_reachable.cache_clear()
    message = dry_run(run_unlearn, out, 'data.train.authors_full.args.hf_args={path = "some-org/some-data"}')
    assert (
        "dataset 'some-org/some-data' is not a local folder and not in the Hugging Face cache, and the hub"
        in message
    )
    assert "cannot be reached from this machine" in message
    machine.hub_reachable.cache_clear()


def test_an_output_folder_that_cannot_be_created(run_unlearn: Runner, tmp_path: Path) -> None:
    result = run_unlearn("train", QUICK, "run.output_dir=/proc/unlearn-cli/run", "--dry-run")
    assert "key 'run.output_dir': cannot create output folder /proc/unlearn-cli/run" in error_of(result)
    (tmp_path / "file").write_text("x")
    result = run_unlearn("recipe", "validate", QUICK, f"run.output_dir={tmp_path / 'file' / 'run'}")
    assert "is a file" in error_of(result)


def test_bf16_on_a_machine_without_a_gpu(run_unlearn: Runner, out: Path) -> None:
    message = dry_run(run_unlearn, out, "trainer.args.bf16=true")
    assert (
        f"error: {OVERRIDE}: key 'trainer.args.bf16': bf16 = true asks for bfloat16 mixed precision"
        in message
    )
    assert "set trainer.args.bf16=false" in message


def test_training_arguments_transformers_rejects_come_with_the_other_problems(
    run_unlearn: Runner, out: Path
) -> None:
    message = dry_run(
        run_unlearn,
        out,
        'data.train.authors_full.args.hf_args={path = "nope.jsonl"}',
        "trainer.args.load_best_model_at_end=true",
        'trainer.args.save_strategy="steps"',
    )
    assert message.startswith("error: 2 problems in recipe")
    assert "key 'data.train.authors_full.args.hf_args.path': data file not found: nope.jsonl" in message
    assert "key 'trainer.args': transformers rejected the training arguments: --load_best_model" in message


def test_a_run_builds_its_training_arguments_once(
    run_unlearn: Runner, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building them sets up accelerate's state: the machine checks check the ones the run uses."""
    from transformers import TrainingArguments

    built: list[Any] = []
    post_init = TrainingArguments.__post_init__

    def counted(self: Any) -> None:
        built.append(self)
        post_init(self)

    monkeypatch.setattr(TrainingArguments, "__post_init__", counted)
    result = run_unlearn("train", QUICK, f"run.output_dir={out}", "--dry-run")
    assert result.code == 0, result.stderr
    assert len(built) == 1


def test_flash_attention_without_flash_attn_on_a_gpu_machine(
    run_unlearn: Runner, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from unlearn_cli.recipes import machine

    if importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash-attn is installed here")
    monkeypatch.setattr(machine, "_accelerator", lambda: "cuda")  # as on a GPU machine
    message = dry_run(run_unlearn, out, "model.model_args.attn_implementation=flash_attention_2")
    assert (
        "key 'model.model_args.attn_implementation': attn_implementation = 'flash_attention_2' needs "
        "the flash-attn" in message
    )
    assert 'pip install "unlearn-cli[flash]"' in message


def test_recipe_validate_can_skip_the_machine_checks(run_unlearn: Runner) -> None:
    result = run_unlearn("recipe", "validate", "tofu_finetune", "--recipe-only")
    assert result.code == 0, result.stderr
    checked = error_of(run_unlearn("recipe", "validate", "tofu_finetune"))
    assert "3 problems" in checked and "HF_HUB_OFFLINE" in checked and "bf16" in checked


# --- data: found only when it is read (before anything is written) -----------------------------------------


def test_a_malformed_data_file_names_the_line(run_unlearn: Runner, tmp_path: Path, out: Path) -> None:
    data = write(
        tmp_path / "qa.jsonl", '{"question": "a", "answer": "b"}\n\n{"question": "c", "answer": "d"\n'
    )
    before = digest(data)
    message = train(run_unlearn, out, f'data.train.authors_full.args.hf_args={{path = "{data}"}}')
    assert f"key 'data.train.authors_full.args.hf_args': data file {data}, line 3: not valid JSON" in message
    assert digest(data) == before


def test_a_row_missing_its_answer_names_the_line_and_the_columns_found(
    run_unlearn: Runner, tmp_path: Path, out: Path
) -> None:
    data = write(tmp_path / "qa.jsonl", '{"question": "a", "answer": "b"}\n{"question": "c", "index": 7}\n')
    message = train(run_unlearn, out, f'data.train.authors_full.args.hf_args={{path = "{data}"}}')
    assert (
        f"key 'data.train.authors_full.args.answer_key': line 2 of {data}: 'answer' is missing "
        "(the row has: question, index)"
    ) in message


def test_a_column_missing_everywhere(run_unlearn: Runner, tmp_path: Path, out: Path) -> None:
    data = write(tmp_path / "qa.jsonl", '{"question": "a", "reply": "b"}\n')
    message = train(run_unlearn, out, f'data.train.authors_full.args.hf_args={{path = "{data}"}}')
    assert "key 'data.train.authors_full.args.answer_key': column 'answer' is not in the dataset" in message


def test_an_empty_forget_split(run_unlearn: Runner, out: Path) -> None:
    message = train(
        run_unlearn,
        out,
        "finetuned_model=builtin://tiny-llama",
        f'data.forget.authors_forget.args.hf_args.path="{SMALL}"',
        'data.forget.authors_forget.args.hf_args.split="train[:0]"',
        command="unlearn",
        recipe="quickstart/unlearn",
    )
    assert (
        "key 'data.forget.authors_forget.args.hf_args': dataset 'json' has zero rows in split 'train[:0]'"
        in message
    )


def test_all_answers_truncated_away(run_unlearn: Runner, out: Path) -> None:
    message = train(run_unlearn, out, "data.train.authors_full.args.max_length=3")
    assert (
        "key 'data.train.authors_full.args.max_length': QADataset has no items left: all 20 lose their "
        "whole answer" in message
    )
    assert "hint: raise max_length" in message


def test_a_tokenizer_with_neither_eos_nor_pad(run_unlearn: Runner, tmp_path: Path, out: Path) -> None:
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=backend).save_pretrained(tmp_path / "tok")
    message = train(
        run_unlearn, out, f"model.tokenizer_args.pretrained_model_name_or_path={tmp_path / 'tok'}"
    )
    assert "key 'model.tokenizer_args': the tokenizer has no end-of-sequence (eos) token" in message
    assert 'model.tokenizer_args.eos_token = "..."' in message


def test_the_run_folder_of_a_valid_run_is_refused_when_it_holds_your_files(
    run_unlearn: Runner, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    message = error_of(run_unlearn("train", QUICK, *FAST, f"run.output_dir={mine}"))
    assert "is not empty and holds no unlearn-cli run (thesis.tex)" in message
    assert (mine / "thesis.tex").read_text() == "precious"
