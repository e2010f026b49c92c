"""The component catalogue: `@register`, the static (ast) index, plugins, entry points, `unlearn registry`."""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unlearn_cli import registry
from unlearn_cli.errors import UserError
from unlearn_cli.registry import Catalog, Component, builtin_components, register

Runner = Callable[..., Any]  # returns conftest.CliResult (code, stdout, stderr)
PACKAGE_ROOT = Path(registry.__file__).resolve().parent


def table_rows(text: str) -> list[list[str]]:
    """The rows of a listing as printed when piped: one tab-separated line per row."""
    return [line.split("\t") for line in text.splitlines() if "\t" in line]


@pytest.fixture
def fresh_runtime(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], Component]:
    """An empty runtime registry for this test only."""
    runtime: dict[tuple[str, str], Component] = {}
    monkeypatch.setattr(registry, "_runtime", runtime)
    return runtime


# --- @register ----------------------------------------------------------------------------------------------


def test_register_defaults_and_explicit_names(fresh_runtime: dict[tuple[str, str], Component]) -> None:
    @register("dataset")
    class MyRows:
        """Rows of mine.

        Details not shown in the catalogue.
        """

    @register("metric", "my_metric", description="Given description.")
    def compute() -> None:
        """Ignored because a description is given."""

    assert fresh_runtime[("dataset", "MyRows")] == Component(
        "dataset",
        "MyRows",
        f"{__name__}:test_register_defaults_and_explicit_names.<locals>.MyRows",
        "Rows of mine.",
        f"plugin {__name__}",
    )
    assert fresh_runtime[("metric", "my_metric")].description == "Given description."
    assert fresh_runtime[("metric", "my_metric")].load() is compute


def test_register_does_not_inherit_a_base_class_docstring(
    fresh_runtime: dict[tuple[str, str], Component],
) -> None:
    class Base:
        """Base documentation."""

    @register("trainer", "child")
    class Child(Base):
        pass

    assert fresh_runtime[("trainer", "child")].description == ""  # as the static index reads it


def test_register_rejects_unknown_kinds_and_clashing_names(
    fresh_runtime: dict[tuple[str, str], Component],
) -> None:
    with pytest.raises(ValueError) as caught:
        register("widget")
    assert str(caught.value) == (
        "unknown component kind 'widget'; expected one of "
        "model, dataset, collator, trainer, metric, benchmark"
    )

    class First:
        pass

    class Second:
        pass

    register("dataset", "same")(First)
    register("dataset", "same")(First)  # registering the same object again is harmless
    with pytest.raises(ValueError) as caught:
        register("dataset", "same")(Second)
    prefix = f"{__name__}:test_register_rejects_unknown_kinds_and_clashing_names.<locals>"
    assert str(caught.value) == f"dataset 'same' is registered twice: {prefix}.First and {prefix}.Second"


# --- the static index ---------------------------------------------------------------------------------------

PLUGIN_SOURCE = '''
from unlearn_cli import registry
from unlearn_cli.registry import register


def other(kind):
    return lambda obj: obj


class Base:
    """Base documentation."""


@register("dataset")
class Alpha:
    """First line.

    More lines.
    """


@registry.register("collator", "named_beta", description="Given text.")
class Beta:
    """Not used."""


@register(kind="trainer", name="gamma")
class Gamma(Base):
    pass


@other("dataset")
class Delta:
    """Not registered."""


@register("metric")
def epsilon():
    """A metric function."""


def zeta():
    """Not registered."""
'''


def test_static_index_reads_every_form_of_the_decorator() -> None:
    found = list(registry._registrations_in(ast.parse(PLUGIN_SOURCE), "pkg.mod"))
    assert found == [
        Component("dataset", "Alpha", "pkg.mod:Alpha", "First line."),
        Component("collator", "named_beta", "pkg.mod:Beta", "Given text."),
        Component("trainer", "gamma", "pkg.mod:Gamma", ""),
        Component("metric", "epsilon", "pkg.mod:epsilon", "A metric function."),
    ]


def test_static_index_equals_what_importing_a_module_registers(
    fresh_runtime: dict[tuple[str, str], Component], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "unlearn_static_check.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "unlearn_static_check", raising=False)
    importlib.import_module("unlearn_static_check")
    static = registry._registrations_in(ast.parse(PLUGIN_SOURCE), "unlearn_static_check")
    assert {(c.kind, c.name): (c.import_path, c.description) for c in static} == {
        key: (c.import_path, c.description) for key, c in fresh_runtime.items()
    }
    monkeypatch.delitem(sys.modules, "unlearn_static_check")


def test_builtin_index_equals_what_importing_the_package_registers() -> None:
    static = {(c.kind, c.name): (c.import_path, c.description) for c in builtin_components()}
    assert static[("trainer", "finetune")] == (
        "unlearn_cli.trainers.finetune:FinetuneTrainer",
        "Supervised fine-tuning: transformers.Trainer, loss on the labelled (answer) tokens.",
    )
    # import every module that could register something, not only those the index found
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        if "register" not in path.read_text(encoding="utf-8") or path.name == "__main__.py":
            continue
        parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        importlib.import_module(".".join(parts))
    imported = {
        key: (c.import_path, c.description)
        for key, c in registry._runtime.items()
        if c.import_path.startswith("unlearn_cli.")
    }
    assert imported == static
    assert all(
        c.origin == "builtin" for c in registry._runtime.values() if c.import_path.startswith("unlearn_cli.")
    )


# --- the catalogue ------------------------------------------------------------------------------------------

CATALOG = Catalog(
    [
        Component("dataset", "QADataset", "m:QADataset", "QA."),
        Component("dataset", "TextCorpus", "m:TextCorpus", "Text."),
        Component("trainer", "finetune", "m:Finetune", "SFT."),
    ]
)


def test_catalog_lookup_and_listing() -> None:
    assert CATALOG.names("dataset") == ["QADataset", "TextCorpus"]
    assert [c.name for c in CATALOG.components()] == ["QADataset", "TextCorpus", "finetune"]
    assert [c.name for c in CATALOG.components("trainer")] == ["finetune"]
    assert CATALOG.get("dataset", "QADataset").import_path == "m:QADataset"
    assert [c.kind for c in CATALOG.find("finetune")] == ["trainer"]
    assert CATALOG.find("nothing") == []


@pytest.mark.parametrize(
    ("kind", "name", "hint"),
    [
        ("dataset", "QADatset", "did you mean 'QADataset'? (see `unlearn registry list`)"),
        (
            "dataset",
            "zzz",
            "registered dataset handlers: QADataset, TextCorpus (see `unlearn registry list`)",
        ),
        ("metric", "forget_quality", "no metric is registered (see `unlearn registry list`)"),
    ],
)
def test_catalog_unknown_name(kind: str, name: str, hint: str) -> None:
    with pytest.raises(UserError) as caught:
        CATALOG.get(kind, name, file="r.toml", key="data.train.X")
    error = caught.value
    assert (error.problem, error.file, error.key, error.hint) == (
        f"unknown {kind} handler '{name}'",
        "r.toml",
        "data.train.X",
        hint,
    )


def test_a_plugin_cannot_take_a_builtin_name(fresh_runtime: dict[tuple[str, str], Component]) -> None:
    fresh_runtime[("trainer", "finetune")] = Component(
        "trainer", "finetune", "evil:Trainer", "", "plugin evil"
    )
    with pytest.raises(UserError) as caught:
        Catalog.discover()
    assert caught.value.problem == (
        "trainer 'finetune' from evil:Trainer clashes with the one from "
        "unlearn_cli.trainers.finetune:FinetuneTrainer"
    )


def test_discover_imports_plugin_modules(toy_plugin_dir: Path) -> None:
    catalog = Catalog.discover(["unlearn_toy_plugin"])
    toy = catalog.get("dataset", "ToyDataset")
    assert (toy.import_path, toy.description, toy.origin) == (
        "unlearn_toy_plugin:ToyDataset",
        "Toy rows for tests.",
        "plugin unlearn_toy_plugin",
    )
    assert catalog.get("trainer", "finetune").origin == "builtin"


# --- `unlearn registry list|show` ---------------------------------------------------------------------------


def test_registry_list_by_kind(run_unlearn: Runner) -> None:
    result = run_unlearn("registry", "list", "--kind", "trainer")
    assert result.code == 0, result.stderr
    rows = table_rows(result.stdout)
    assert [
        "trainer",
        "finetune",
        "unlearn_cli.trainers.finetune:FinetuneTrainer",
        "Supervised fine-tuning: transformers.Trainer, loss on the labelled (answer) tokens.",
    ] in rows
    assert {row[0] for row in rows} == {"trainer"}


def test_registry_list_unknown_kind(run_unlearn: Runner) -> None:
    result = run_unlearn("registry", "list", "--kind", "datset")
    assert (result.code, result.stdout, result.stderr) == (
        2,
        "",
        "error: key '--kind': unknown kind 'datset'\n  hint: did you mean 'dataset'?\n",
    )


def test_registry_show_unknown_kind(run_unlearn: Runner) -> None:
    result = run_unlearn("registry", "show", "QADataset", "--kind", "bogus")
    assert (result.code, result.stdout, result.stderr) == (
        2,
        "",
        "error: key '--kind': unknown kind 'bogus'\n"
        "  hint: kinds: model, dataset, collator, trainer, metric, benchmark\n",
    )


def test_components_have_no_unused_helpers() -> None:
    # signature() and doc() were never called: `unlearn registry show` inspects the loaded handler itself
    assert not hasattr(registry.Component, "signature")
    assert not hasattr(registry.Component, "doc")


def test_registry_show_a_dataset(run_unlearn: Runner, toy_plugin_dir: Path) -> None:
    result = run_unlearn("registry", "show", "ToyDataset", "--plugin", "unlearn_toy_plugin")
    assert result.code == 0, result.stderr
    assert "ToyDataset  unlearn_toy_plugin:ToyDataset" in result.stdout
    assert "More text that the catalogue does not show." in result.stdout  # the whole docstring
    assert "dataset 'ToyDataset' — args:" in result.stdout
    assert table_rows(result.stdout) == [
        ["hf_args", "dict", "required", ""],
        ["tokenizer", "any value", "required", "injected by the pipeline"],
        ["template_args", "any value", "required", "injected by the pipeline"],
        ["max_length", "int", "8", ""],
        ["mode", "Literal['a', 'b']", "'a'", ""],
    ]


def test_registry_show_a_trainer_lists_its_method_args(run_unlearn: Runner, toy_plugin_dir: Path) -> None:
    result = run_unlearn("registry", "show", "toy_trainer", "-p", "unlearn_toy_plugin")
    assert result.code == 0, result.stderr
    assert "trainer 'toy_trainer' — method_args" in result.stdout
    assert "(keyword-only parameters)" in result.stdout
    assert table_rows(result.stdout) == [["alpha", "float", "1.0", ""], ["steps", "int", "3", ""]]
    assert "trainer.args: any field of transformers.TrainingArguments." in result.stdout
    fields = result.stdout.split("fields: ", 1)[1]
    assert "learning_rate, " in fields and "output_dir" not in fields  # the CLI sets output_dir


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["ToyDatset"],
            "no registered component named 'ToyDatset'\n  hint: did you mean 'ToyDataset'",
        ),
        (
            ["ToyDataset", "--kind", "trainer"],
            "no registered component named 'ToyDataset' of kind trainer\n  hint: ",
        ),
        (
            ["qqqqqqqq"],
            "no registered component named 'qqqqqqqq'\n"
            "  hint: check the spelling (see `unlearn registry list`)\n",
        ),
    ],
)
def test_registry_show_unknown_name(
    run_unlearn: Runner, toy_plugin_dir: Path, args: list[str], message: str
) -> None:
    result = run_unlearn("registry", "show", *args, "-p", "unlearn_toy_plugin")
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: " + message)
    assert "Traceback" not in result.stderr


def test_registry_list_finds_plugins_and_entry_points(
    run_unlearn_subprocess: Runner, toy_plugin_dir: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    dist_info = site / "toy_ep-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: toy-ep\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        "[unlearn_cli.components]\ntoy = toy_ep_components\nbroken = no_such_module_for_toy_ep\n",
        encoding="utf-8",
    )
    (site / "toy_ep_components.py").write_text(
        "from unlearn_cli.registry import register\n\n\n"
        '@register("benchmark", "toy_bench")\n'
        "class ToyBench:\n"
        '    """A benchmark from an installed distribution."""\n',
        encoding="utf-8",
    )

    result = run_unlearn_subprocess(
        "registry", "list", "--plugin", "unlearn_toy_plugin", pythonpath=[site, toy_plugin_dir]
    )

    assert result.code == 0, result.stderr
    rows = table_rows(result.stdout)
    assert [
        "benchmark",
        "toy_bench",
        "toy_ep_components:ToyBench",
        "A benchmark from an installed distribution.",
    ] in rows
    assert ["dataset", "ToyDataset", "unlearn_toy_plugin:ToyDataset", "Toy rows for tests."] in rows
    assert ["collator", "ToyCollator", "unlearn_toy_plugin:ToyCollator", "Pads toy rows."] in rows
    assert rows[[r[1] for r in rows].index("finetune")][:3] == [
        "trainer",
        "finetune",
        "unlearn_cli.trainers.finetune:FinetuneTrainer",
    ]
    # kinds in catalogue order, names sorted within a kind
    kinds = [row[0] for row in rows]
    assert kinds == sorted(kinds, key=registry.KINDS.index)
    # a broken entry point is skipped with a warning, not a crash
    assert (
        "skipping entry point 'broken' (no_such_module_for_toy_ep) of group unlearn_cli.components: "
        "ModuleNotFoundError: No module named 'no_such_module_for_toy_ep'"
    ) in result.stderr
    assert "Traceback" not in result.stderr
