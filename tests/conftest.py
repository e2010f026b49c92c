"""Shared by the recipe, registry and CLI tests: a toy plugin and two ways to run the `unlearn` command.

The toy plugin imports neither torch nor transformers, so recipes that use it validate in milliseconds;
`run_unlearn` calls the console-script entry point in this process, `run_unlearn_subprocess` in a fresh one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_CACHE_ENV = ("UNLEARN_CLI_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE")
_saved_env: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Builtin assets and datasets caches live in a fresh folder per test session, set before any import
    of `datasets` reads them; nothing goes to the hub."""
    root = Path(tempfile.mkdtemp(prefix="unlearn-cli-tests-"))
    config.stash[_cache_root] = root
    _saved_env.update({key: os.environ.get(key) for key in _CACHE_ENV})
    os.environ.update(
        UNLEARN_CLI_CACHE=str(root / "unlearn-cli"),
        HF_DATASETS_CACHE=str(root / "datasets"),
        HF_HUB_OFFLINE="1",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    for key, value in _saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(config.stash.get(_cache_root, ""), ignore_errors=True)


_cache_root = pytest.StashKey[Path]()


TOY_PLUGIN = "unlearn_toy_plugin"
TOY_PLUGIN_SOURCE = '''"""Toy components for unlearn-cli's tests."""

from typing import Any, Literal

from unlearn_cli.registry import register
from unlearn_cli.trainers.contract import TrainerContract


@register("dataset")
class ToyDataset:
    """Toy rows for tests.

    More text that the catalogue does not show.
    """

    def __init__(
        self,
        hf_args: dict,
        tokenizer: Any,
        template_args: Any,
        max_length: int = 8,
        mode: Literal["a", "b"] = "a",
    ) -> None:
        self.hf_args = hf_args


@register("collator", "ToyCollator")
class ToyCollator:
    """Pads toy rows."""

    def __init__(self, tokenizer: Any, padding_side: str = "right") -> None:
        self.padding_side = padding_side


@register("trainer", "toy_trainer")
class ToyTrainer:
    """A toy unlearning method."""

    contract = TrainerContract(command="unlearn", splits=(), optional_splits=("train", "forget", "retain"))

    def __init__(self, *args: Any, alpha: float = 1.0, steps: int = 3, **kwargs: Any) -> None:
        self.alpha = alpha


@register("model", "ToyModel")
def toy_model(model_args: dict) -> dict:
    """A toy model loader."""
    return model_args
'''

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def toy_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder holding the `unlearn_toy_plugin` module, on sys.path for the whole session."""
    folder = tmp_path_factory.mktemp("toy_plugin")
    (folder / f"{TOY_PLUGIN}.py").write_text(TOY_PLUGIN_SOURCE, encoding="utf-8")
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


@pytest.fixture
def run_unlearn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., CliResult]:
    """Run `unlearn ARGS...` in this process, through the console-script entry point (cli.main)."""
    from unlearn_cli.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("UNLEARN_DEBUG", raising=False)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["unlearn", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, _ANSI.sub("", out), _ANSI.sub("", err))

    return run


@pytest.fixture
def run_unlearn_subprocess() -> Callable[..., CliResult]:
    """Run `python -m unlearn_cli.cli ARGS...` in a fresh interpreter; `pythonpath` folders are prepended."""

    def run(
        *args: str,
        pythonpath: list[Path] | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> CliResult:
        full_env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "UNLEARN_DEBUG")}
        full_env.update({"COLUMNS": "250", "NO_COLOR": "1", **(env or {})})
        paths = [str(p) for p in pythonpath or []]
        if full_env.get("PYTHONPATH"):
            paths.append(full_env["PYTHONPATH"])
        if paths:
            full_env["PYTHONPATH"] = os.pathsep.join(paths)
        proc = subprocess.run(
            [sys.executable, "-m", "unlearn_cli.cli", *args],
            capture_output=True,
            text=True,
            env=full_env,
            cwd=cwd,
            timeout=120,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run
