"""What a run records: the toolkit's own commit, devices, batch, data fingerprints, no secrets."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn_cli.outputs import batch_record, environment_record, run_record, toolkit_record
from unlearn_cli.pipelines.inspect import token_segments
from unlearn_cli.recipes import load_recipe, recipe_text, resolve_recipe


def test_environment_record_names_the_libraries() -> None:
    record = environment_record()
    assert record["versions"]["torch"] and record["versions"]["transformers"]
    assert record["versions"]["unlearn-cli"]
    assert "flash-attn" in record["versions"]  # None when not installed, but always listed


def test_the_commit_is_the_toolkits_own_checkout_not_the_working_directory(tmp_path: Path) -> None:
    """Run from another git repository: the record still names the toolkit's commit and dirty state."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    package_root = Path(__file__).resolve().parent.parent
    script = (
        "import json; from unlearn_cli.outputs import toolkit_record; print(json.dumps(toolkit_record()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(package_root), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=True,
    )
    record = json.loads(proc.stdout)
    head = subprocess.run(
        ["git", "-C", str(package_root), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not head:
        pytest.skip("the toolkit is not run from a git checkout here")
    assert record["source"] == "git checkout"
    assert record["commit"] == head
    assert isinstance(record["dirty"], bool)
    assert record["commit"] == toolkit_record()["commit"]


def test_batch_record_multiplies_batch_accumulation_and_world_size() -> None:
    class Args:
        per_device_train_batch_size = 4
        gradient_accumulation_steps = 8
        world_size = 2

    assert batch_record(Args())["effective_batch_size"] == 64


def test_run_record_has_data_fingerprints_and_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/unlearn", "train", "quickstart/finetune"])
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "Q?", "answer": "A."}\n', encoding="utf-8")
    recipe = load_recipe(
        "quickstart/finetune",
        ['data.train.authors_full.args.hf_args={path = "qa.jsonl"}', "run.output_dir=out"],
    )
    record = run_record("train", recipe, extra={"mine": 1})
    (entry,) = record["data"]
    assert entry["source"] == "local"
    assert entry["files"] == [
        {
            "path": str(data),
            "bytes": data.stat().st_size,
            "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        }
    ]
    assert record["output_dir"] == str(tmp_path / "out")
    assert record["working_directory"] == str(tmp_path)
    assert record["command_line"] == "unlearn train quickstart/finetune"
    assert record["hardware"]["world_size"] == 1 and record["hardware"]["device_kind"] == "cpu"
    assert record["mine"] == 1


def test_run_record_fingerprints_the_idk_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    idk = tmp_path / "idk.txt"
    idk.write_text("I don't know.\nNo idea.\n", encoding="utf-8")
    recipe = load_recipe(
        "quickstart/unlearn",
        [
            "data.forget.authors_forget.handler=QAwithIdkDataset",
            "data.forget.authors_forget.args.idk_path=idk.txt",
            "run.output_dir=out",
        ],
    )
    (entry,) = [entry for entry in run_record("unlearn", recipe)["data"] if entry["argument"] == "idk_path"]
    assert entry["split"] == "forget" and entry["name"] == "authors_forget"
    assert entry["handler"] == "QAwithIdkDataset" and entry["path"] == str(idk)
    assert entry["files"] == [
        {
            "path": str(idk),
            "bytes": idk.stat().st_size,
            "sha256": hashlib.sha256(idk.read_bytes()).hexdigest(),
        }
    ]


def test_environment_values_are_saved_and_shown_as_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNLEARN_TEST_TOKEN", "hf_secret_value")
    path = tmp_path / "r.toml"
    path.write_text(
        'token = "${env:UNLEARN_TEST_TOKEN}"\n'
        '[vars]\nheader = "Bearer ${token}"\nplain = "${env:UNLEARN_TEST_UNSET,fallback}"\nkept = "x"\n',
        encoding="utf-8",
    )
    merged = resolve_recipe(str(path))
    assert merged.values["vars"]["header"] == "Bearer hf_secret_value"  # the run sees the value
    text = recipe_text(merged)
    assert "hf_secret_value" not in text
    assert 'token = "${env:UNLEARN_TEST_TOKEN}"' in text
    assert 'header = "Bearer ${token}"' in text  # took the secret through another reference
    assert 'plain = "${env:UNLEARN_TEST_UNSET,fallback}"' in text
    assert 'kept = "x"' in text
    saved = tmp_path / "saved.toml"
    saved.write_text(text, encoding="utf-8")
    assert resolve_recipe(str(saved)).values == merged.values  # loading it reads the environment again


def test_token_segments_split_prompt_and_trained_runs() -> None:
    segments = token_segments([5, 6, 7, 8, 9], [-100, -100, 7, 8, -100])
    assert segments == [(False, [5, 6]), (True, [7, 8]), (False, [9])]
