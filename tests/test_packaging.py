"""The wheel carries the packaged recipes and data assets, and an installed copy finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("unlearn_cli-*.whl")
    return built


def test_wheel_contains_recipes_and_assets(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for recipe in sorted(REPO.glob("recipes/**/*.toml")):
        relative = recipe.relative_to(REPO / "recipes").as_posix()
        assert f"unlearn_cli/_packaged_recipes/{relative}" in names
    for config in sorted(REPO.glob("recipes/accelerate/*.yaml")):
        assert f"unlearn_cli/_packaged_recipes/accelerate/{config.name}" in names
    assert "unlearn_cli/data/assets/idontknow.txt" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "unlearn = unlearn_cli.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_copy_lists_and_resolves_packaged_recipes(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "from unlearn_cli.recipes.loading import packaged_recipes_root, packaged_recipe_names;"
        "from unlearn_cli.recipes import resolve_recipe;"
        "print(packaged_recipes_root());"
        "print('quickstart/finetune' in packaged_recipe_names());"
        "print(resolve_recipe('quickstart/finetune').values['model']['model_args']['pretrained_model_name_or_path'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site), "PATH": ""},
        cwd=tmp_path,
        check=True,
        timeout=120,
    )
    root, listed, model = result.stdout.split()
    assert Path(root) == site / "unlearn_cli" / "_packaged_recipes"
    assert listed == "True"
    assert model == "builtin://tiny-llama"
