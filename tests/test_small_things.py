"""Small things a new user tripped on: help without `<bool>`, listings that never wrap names, `--json`,
empty listings that say so, a line when an asset is built, no misleading length warning, empty answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Runner = Callable[..., Any]


@pytest.mark.parametrize("command", [["train"], ["unlearn"], ["recipe", "validate"], ["registry", "list"]])
def test_help_shows_flags_without_a_bool_type(run_unlearn: Runner, command: list[str]) -> None:
    result = run_unlearn(*command, "--help")
    assert result.code == 0
    assert "<bool>" not in result.stdout
    assert "--help" in result.stdout


@pytest.mark.parametrize(
    "command",
    [["train"], ["unlearn"], ["eval"], ["compare"], ["inspect-data"], ["quickstart"], ["recipe", "cp"]],
)
def test_every_command_takes_h_for_help(run_unlearn: Runner, command: list[str]) -> None:
    result = run_unlearn(*command, "-h")
    assert result.code == 0 and "Usage:" in result.stdout and "--help" in result.stdout


def test_help_shows_the_placeholders_in_angle_brackets(run_unlearn: Runner) -> None:
    """The help is markdown, where a bare `<name>` would vanish as an HTML tag."""
    train = run_unlearn("train", "--help").stdout
    assert "<folder>.previous" in train and "<output folder>/merged" in train
    assert "<NAME>_EVAL.json" in run_unlearn("eval", "--help").stdout


def test_train_help_shows_resume_with_its_optional_value(run_unlearn: Runner) -> None:
    out = run_unlearn("train", "--help").stdout
    assert "--resume" in out and "[latest|CHECKPOINT]" in out and "--overwrite" in out


def test_resume_without_a_value_means_latest() -> None:
    from unlearn_cli.cli.common import with_resume_value

    assert with_resume_value(["train", "r.toml", "--resume"]) == ["train", "r.toml", "--resume", "latest"]
    assert with_resume_value(["train", "r.toml", "--resume", "a=1"]) == [
        "train",
        "r.toml",
        "--resume",
        "latest",
        "a=1",
    ]
    assert with_resume_value(["train", "--resume", "r.toml"]) == ["train", "--resume", "latest", "r.toml"]
    assert with_resume_value(["train", "r", "--resume", "checkpoint-40"]) == [
        "train",
        "r",
        "--resume",
        "checkpoint-40",
    ]
    assert with_resume_value(["train", "r", "--resume", "--dry-run"]) == [
        "train",
        "r",
        "--resume",
        "latest",
        "--dry-run",
    ]


def test_listings_are_tab_separated_rows_when_piped(run_unlearn: Runner) -> None:
    result = run_unlearn("registry", "list", "--kind", "dataset")
    lines = result.stdout.splitlines()
    assert "dataset\tQAwithAlternateDataset\tunlearn_cli.data.qa:QAwithAlternateDataset\t" in result.stdout
    assert all(line.count("\t") == 3 for line in lines)
    recipes = run_unlearn("recipe", "list").stdout.splitlines()
    assert all(line.count("\t") == 1 for line in recipes)
    assert any(line.startswith("models/Llama-3.2-1B-Instruct\t") for line in recipes)


def test_listings_never_wrap_a_name_in_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from unlearn_cli.cli import common

    narrow = Console(width=60, force_terminal=True, record=True, color_system=None)
    monkeypatch.setattr(common, "console", narrow)
    common.print_rows(
        ["kind", "name", "import path", "description"],
        [
            [
                "dataset",
                "QAwithAlternateDataset",
                "unlearn_cli.data.qa:QAwithAlternateDataset",
                "Pairs of the same.",
            ]
        ],
        as_json=False,
        keep_whole=("kind", "name", "import path"),
    )
    text = narrow.export_text()
    assert "unlearn_cli.data.qa:QAwithAlternateDataset" in text and "QAwithAlternateDataset" in text


def test_json_listings(run_unlearn: Runner) -> None:
    components = json.loads(run_unlearn("registry", "list", "--json").stdout)
    assert {"kind": "trainer", "name": "NPO", "import_path": "unlearn_cli.trainers.npo:NPO"}.items() <= next(
        c for c in components if c["name"] == "NPO"
    ).items()
    recipes = json.loads(run_unlearn("recipe", "list", "--json").stdout)
    assert any(r["name"] == "quickstart/finetune" and r["path"].endswith("finetune.toml") for r in recipes)
    (shown,) = json.loads(run_unlearn("registry", "show", "NPO", "--json").stdout)
    assert shown["contract"]["command"] == "unlearn"
    assert {"argument": "beta", "type": "float (> 0)", "default": "0.1"}.items() <= next(
        a for a in shown["arguments"] if a["argument"] == "beta"
    ).items()


def test_an_empty_listing_says_so(run_unlearn: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    from unlearn_cli import registry

    builtins = registry.builtin_components()
    monkeypatch.setattr(
        registry, "builtin_components", lambda: tuple(c for c in builtins if c.kind != "metric")
    )
    # metrics registered at import time by earlier tests live in the runtime registry: hide them too
    monkeypatch.setattr(
        registry, "_runtime", {k: c for k, c in registry._runtime.items() if k[0] != "metric"}
    )
    result = run_unlearn("registry", "list", "--kind", "metric")
    assert result.code == 0 and result.stdout == ""
    assert "no metric components registered yet" in result.stderr
    assert json.loads(run_unlearn("registry", "list", "--kind", "metric", "--json").stdout) == []


def test_first_use_of_a_builtin_asset_prints_a_line(tmp_path: Path) -> None:
    script = "from unlearn_cli.builtin import resolve_builtin; resolve_builtin('builtin://fictitious-authors?authors=2&facts=2')"
    env = {**os.environ, "UNLEARN_CLI_CACHE": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "200"}
    first = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert "building builtin://fictitious-authors into" in first.stderr and "(first use" in first.stderr
    again = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert "building" not in again.stderr
