"""`unlearn registry list|show`: what components exist and what arguments they take."""

from __future__ import annotations

import typing
from typing import Any

import typer

from unlearn_cli.cli.common import console, json_option, print_rows
from unlearn_cli.errors import UserError, did_you_mean
from unlearn_cli.registry import Component

app = typer.Typer(
    help="List registered components (models, datasets, collators, trainers, ...).", no_args_is_help=True
)


def _checked_kind(kind: str | None) -> str | None:
    """The `--kind` value, or a UserError for an unknown one (the catalogue would fail with a KeyError)."""
    from unlearn_cli.registry import KINDS

    if kind is not None and kind not in KINDS:
        raise UserError(
            f"unknown kind '{kind}'",
            key="--kind",
            hint=did_you_mean(kind, KINDS) or f"kinds: {', '.join(KINDS)}",
        )
    return kind


def _kind_option() -> str | None:
    return typer.Option(
        None, "--kind", "-k", help="Only this kind: model, dataset, collator, trainer, metric, benchmark."
    )


def _plugin_option() -> list[str]:
    return typer.Option([], "--plugin", "-p", help="Also import this plugin module first.")


@app.command("list")
def list_components(
    kind: str | None = _kind_option(),
    plugin: list[str] = _plugin_option(),
    as_json: bool = json_option(),
) -> None:
    """Registered components: kind, name, import path, description (tab-separated when piped)."""
    from unlearn_cli.registry import Catalog

    kind = _checked_kind(kind)
    catalog = Catalog.discover(plugin)
    rows = [[c.kind, c.name, c.import_path, c.description] for c in catalog.components(kind)]
    what = f"{kind} components" if kind else "components"
    print_rows(
        ["kind", "name", "import path", "description"],
        rows,
        as_json=as_json,
        title="Registered components",
        keep_whole=("kind", "name", "import path"),
        empty=f"no {what} registered"
        + (
            ' yet (a plugin can add some: @register("' + kind + '", NAME) in a module named by --plugin)'
            if kind
            else ""
        ),
    )


@app.command("show")
def show_component(
    name: str = typer.Argument(..., help="A registered component name, e.g. QADataset."),
    kind: str | None = _kind_option(),
    plugin: list[str] = _plugin_option(),
    as_json: bool = json_option(),
) -> None:
    """A component's arguments (type, default, whether the pipeline injects it) and documentation."""
    import json

    from unlearn_cli.registry import Catalog

    kind = _checked_kind(kind)
    catalog = Catalog.discover(plugin)
    matches = [c for c in catalog.find(name) if kind is None or c.kind == kind]
    if not matches:
        everything = [c.name for c in catalog.components(kind)]
        raise UserError(
            f"no registered component named '{name}'" + (f" of kind {kind}" if kind else ""),
            hint=(did_you_mean(name, everything) or "check the spelling") + " (see `unlearn registry list`)",
        )
    described = [describe_component(component) for component in matches]
    if as_json:
        console.out(json.dumps(described, indent=2, default=str), highlight=False)
        return
    for entry in described:
        _print_description(entry)


COLUMNS = ("argument", "type", "default", "note")


def describe_component(component: Component) -> dict[str, Any]:
    """Everything `registry show` tells about a component, as plain data (also its `--json` output)."""
    import inspect

    from unlearn_cli.recipes.schema import INJECTED_ARGUMENTS, _resolved_hints, handler_parameters
    from unlearn_cli.trainers.contract import contract_of, method_args_model

    handler = component.load()
    entry: dict[str, Any] = {
        "kind": component.kind,
        "name": component.name,
        "import_path": component.import_path,
        "description": inspect.getdoc(handler) or component.description,
    }
    if component.kind == "trainer":
        contract = contract_of(handler)
        model = method_args_model(handler)
        if model is not None:
            entry["arguments_title"] = f"trainer '{component.name}' — method_args"
            entry["arguments"] = _model_fields(model)
        else:
            parameters = [
                p for p in handler_parameters(handler, skip=contract.injected) if p.kind == p.KEYWORD_ONLY
            ]
            entry["arguments_title"] = f"trainer '{component.name}' — method_args (keyword-only parameters)"
            entry["arguments"] = _parameters(parameters, _resolved_hints(handler), frozenset())
        entry["contract"] = _contract(contract)
        entry["training_arguments"] = _training_argument_names()
        return entry
    entry["arguments_title"] = f"{component.kind} '{component.name}' — args"
    entry["arguments"] = _parameters(
        handler_parameters(handler),
        _resolved_hints(handler),
        INJECTED_ARGUMENTS.get(component.kind, frozenset()),
    )
    return entry


def _model_fields(model: Any, prefix: str = "") -> list[dict[str, str]]:
    from unlearn_cli.recipes.schema import _type_name

    rows = []
    for field_name, field in model.model_fields.items():
        annotation = field.annotation
        if field.metadata:
            annotation = typing.Annotated[(annotation, *field.metadata)]  # show bounds such as "> 0"
        rows.append(
            {
                "argument": f"{prefix}{field_name}",
                "type": _type_name(annotation),
                "default": "required" if field.is_required() else repr(field.default),
                "note": field.description or "",
            }
        )
    return rows


def _parameters(
    parameters: list[Any], hints: dict[str, Any], injected: frozenset[str]
) -> list[dict[str, str]]:
    import inspect

    from pydantic import BaseModel

    from unlearn_cli.recipes.schema import _UNRESOLVED, _type_name

    rows = []
    for parameter in parameters:
        annotation = hints.get(parameter.name, parameter.annotation)
        shown = (
            str(parameter.annotation) + " (unresolved)"
            if annotation is _UNRESOLVED
            else _type_name(annotation)
        )
        rows.append(
            {
                "argument": parameter.name,
                "type": shown,
                "default": "required"
                if parameter.default is inspect.Parameter.empty
                else repr(parameter.default),
                "note": "injected by the pipeline" if parameter.name in injected else "",
            }
        )
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(_model_fields(annotation, prefix=f"  {parameter.name}."))
    return rows


def _contract(contract: Any) -> dict[str, Any]:
    return {
        "command": contract.command,
        "reads": [f"data.{split}" for split in contract.splits],
        "pairs": [f"data.{split}" for split in contract.splits if contract.item_shape(split) == "pair"],
        "may_read": [f"data.{split}" for split in contract.optional_splits],
        "default_args": dict(contract.default_args),
        "injected": sorted(contract.injected),
    }


def _training_argument_names() -> list[str]:
    from unlearn_cli.recipes.schema import TRAINER_MANAGED_ARGS, _training_arguments_schema

    _, annotations = _training_arguments_schema()
    return [name for name in sorted(annotations) if name not in TRAINER_MANAGED_ARGS]


def _contract_lines(contract: dict[str, Any]) -> list[str]:
    """What a trainer reads and gets: its command, data splits, item shapes, TrainingArguments defaults."""
    splits = ", ".join(
        f"[{split}]" + (" (pairs)" if split in contract["pairs"] else "") for split in contract["reads"]
    )
    lines = [f"run with: unlearn {contract['command']}", f"reads: {splits or 'nothing required'}"]
    if contract["may_read"]:
        lines.append("may read: " + ", ".join(f"[{split}]" for split in contract["may_read"]))
    if contract["default_args"]:
        lines.append(
            "trainer.args defaults: " + ", ".join(f"{k} = {v!r}" for k, v in contract["default_args"].items())
        )
    if contract["injected"]:
        lines.append("injected by the container: " + ", ".join(contract["injected"]))
    return lines


TRAINING_ARGUMENTS_DOC = (
    "trainer.args: any field of transformers.TrainingArguments. Documentation: "
    "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments"
)


def _print_description(entry: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.panel import Panel

    rows = [[row[column] for column in COLUMNS] for row in entry["arguments"]] or [["(none)", "", "", ""]]
    if not console.is_terminal:  # piped: plain lines, nothing wrapped
        console.out(f"{entry['kind']} {entry['name']}  {entry['import_path']}", highlight=False)
        console.out(entry["description"], highlight=False)
        console.out(f"\n{entry['arguments_title']}:", highlight=False)
        print_rows(list(COLUMNS), rows, as_json=False)
        if "contract" in entry:
            console.out("", highlight=False)
            for line in _contract_lines(entry["contract"]):
                console.out(line, highlight=False)
            console.out(TRAINING_ARGUMENTS_DOC, highlight=False)
            console.out(f"  fields: {', '.join(entry['training_arguments'])}", highlight=False)
        return
    console.print(
        Panel(
            escape(entry["description"]),
            title=f"{escape(entry['name'])}  [dim]{escape(entry['import_path'])}[/]",
            title_align="left",
        )
    )
    print_rows(list(COLUMNS), rows, as_json=False, title=entry["arguments_title"], keep_whole=("argument",))
    if "contract" in entry:
        console.print(escape("\n".join(_contract_lines(entry["contract"]))), highlight=False, soft_wrap=True)
        console.print(f"[dim]{TRAINING_ARGUMENTS_DOC}[/]", soft_wrap=True)
        console.print(f"[dim]  fields: {', '.join(entry['training_arguments'])}[/]", highlight=False)
