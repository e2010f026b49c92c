"""The "Adding an unlearning method" walkthrough of docs/components.md is what the code really needs: its
plugin module and recipe, taken from the page as they are, validate and unlearn through the real CLI."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "components.md"


def _walkthrough_blocks() -> tuple[str, str]:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("### Adding an unlearning method") :]
    python = re.search(r"```python\n(.*?)```", section, re.S)
    toml = re.search(r"```toml\n(.*?)```", section, re.S)
    assert python and toml
    return python.group(1), toml.group(1)


@pytest.fixture
def walkthrough(tmp_path: Path) -> Path:
    """The page's plugin as `my_lab/surprise.py` on sys.path, and its recipe; returns the recipe path."""
    module, recipe = _walkthrough_blocks()
    package = tmp_path / "my_lab"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "surprise.py").write_text(module)
    path = tmp_path / "surprise.toml"
    path.write_text(recipe)
    sys.path.insert(0, str(tmp_path))
    yield path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m == "my_lab" or m.startswith("my_lab.")]:
        del sys.modules[name]


OFFLINE = [
    "finetuned_model=builtin://tiny-llama",
    'tofu_path="builtin://fictitious-authors?authors=4&facts=5"',
    "trainer.args.bf16=false",
    "trainer.args.max_steps=2",
    "trainer.args.per_device_train_batch_size=2",
    "trainer.args.gradient_accumulation_steps=1",
    "trainer.args.logging_steps=1",
]


def test_the_walkthrough_method_validates_and_shows_its_arguments(run_unlearn, walkthrough: Path) -> None:
    result = run_unlearn("recipe", "validate", str(walkthrough), "--recipe-only")
    assert result.code == 0, result.stderr
    shown = run_unlearn("registry", "show", "Surprise", "--plugin", "my_lab.surprise")
    assert shown.code == 0, shown.stderr
    assert "power" in shown.stdout and "how much more surprising tokens weigh" in shown.stdout
    wrong = run_unlearn(
        "recipe", "validate", str(walkthrough), "trainer.method_args.power=-1", "--recipe-only"
    )
    assert wrong.code == 2 and "trainer.method_args.power" in wrong.stderr


@pytest.mark.slow
def test_the_walkthrough_method_unlearns(run_unlearn, walkthrough: Path, tmp_path: Path) -> None:
    import json

    output_dir = tmp_path / "run"
    result = run_unlearn("unlearn", str(walkthrough), *OFFLINE, f"run.output_dir={output_dir}")
    assert result.code == 0, result.stderr
    manifest = json.loads((output_dir / "manifest.json").read_text())
    assert manifest["trainer"] == "Surprise" and manifest["global_steps"] == 2
    assert manifest["method_args"]["power"] == 0.5
    logged = [json.loads(line) for line in (output_dir / "loss_log.jsonl").read_text().splitlines()]
    assert all(entry["forget_loss"] < 0 < entry["retain_loss"] for entry in logged)
