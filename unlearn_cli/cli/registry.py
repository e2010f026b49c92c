"""`unlearn registry list|show`: what components exist and what arguments they take."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from unlearn_cli.cli.common import console
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


@app.command("list")
def list_components(
    kind: str | None = _kind_option(),
    plugin: list[str] = typer.Option([], "--plugin", "-p", help="Also import this plugin module first."),
) -> None:
    """Table of registered components: kind, name, import path, description."""
    from unlearn_cli.registry import Catalog

    kind = _checked_kind(kind)
    catalog = Catalog.discover(plugin)
    table = Table(title="Registered components", show_lines=False)
    for column in ("kind", "name", "import path", "description"):
        table.add_column(column, overflow="fold")
    for component in catalog.components(kind):
        table.add_row(component.kind, component.name, component.import_path, component.description)
    console.print(table)


@app.command("show")
def show_component(
    name: str = typer.Argument(..., help="A registered component name, e.g. QADataset."),
    kind: str | None = _kind_option(),
    plugin: list[str] = typer.Option([], "--plugin", "-p", help="Also import this plugin module first."),
) -> None:
    """A component's arguments (type, default, whether the pipeline injects it) and documentation."""
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
    for component in matches:
        _describe(component)


def _describe(component: Component) -> None:
    import inspect

    from rich.markup import escape
    from rich.panel import Panel

    from unlearn_cli.recipes.schema import INJECTED_ARGUMENTS, _resolved_hints, handler_parameters
    from unlearn_cli.trainers.contract import contract_of, method_args_model

    handler = component.load()
    console.print(
        Panel(
            escape(inspect.getdoc(handler) or component.description),
            title=f"{component.name}  [dim]{component.import_path}[/]",
            title_align="left",
        )
    )
    if component.kind == "trainer":
        contract = contract_of(handler)
        model = method_args_model(handler)
        if model is not None:
            table = _arguments_table(f"trainer '{component.name}' — method_args")
            _add_model_fields(table, model)
            console.print(table)
        else:
            _print_parameters(
                component,
                [p for p in handler_parameters(handler, skip=contract.injected) if p.kind == p.KEYWORD_ONLY],
                _resolved_hints(handler),
                "method_args (keyword-only parameters)",
                frozenset(),
            )
        _describe_contract(contract)
        _describe_training_arguments()
        return
    _print_parameters(
        component,
        handler_parameters(handler),
        _resolved_hints(handler),
        "args",
        INJECTED_ARGUMENTS.get(component.kind, frozenset()),
    )


def _arguments_table(title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("argument", "type", "default", "note"):
        table.add_column(column, overflow="fold")
    return table


def _add_model_fields(table: Table, model: Any, prefix: str = "") -> None:
    from rich.markup import escape

    from unlearn_cli.recipes.schema import _type_name

    for field_name, field in model.model_fields.items():
        default = "required" if field.is_required() else repr(field.default)
        table.add_row(
            f"{prefix}{field_name}",
            escape(_type_name(field.annotation)),
            escape(default),
            field.description or "",
        )
    if not model.model_fields:
        table.add_row("(none)", "", "", "")


def _print_parameters(
    component: Component, parameters: list[Any], hints: dict[str, Any], title: str, injected: frozenset[str]
) -> None:
    import inspect

    from pydantic import BaseModel
    from rich.markup import escape

    from unlearn_cli.recipes.schema import _type_name

    table = _arguments_table(f"{component.kind} '{component.name}' — {title}")
    for parameter in parameters:
        annotation = hints.get(parameter.name, parameter.annotation)
        default = "required" if parameter.default is inspect.Parameter.empty else repr(parameter.default)
        note = "injected by the pipeline" if parameter.name in injected else ""
        table.add_row(parameter.name, escape(_type_name(annotation)), escape(default), note)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            _add_model_fields(table, annotation, prefix=f"  {parameter.name}.")
    if not parameters:
        table.add_row("(none)", "", "", "")
    console.print(table)


def _describe_contract(contract: Any) -> None:
    """What the trainer reads and gets: its command, data splits, item shapes, TrainingArguments defaults."""
    splits = ", ".join(
        f"[data.{split}]" + (" (pairs)" if contract.item_shape(split) == "pair" else "")
        for split in contract.splits
    )
    optional = ", ".join(f"[data.{split}]" for split in contract.optional_splits)
    lines = [f"run with: unlearn {contract.command}", f"reads: {splits or 'nothing required'}"]
    if optional:
        lines.append(f"may read: {optional}")
    if contract.default_args:
        lines.append(
            "trainer.args defaults: " + ", ".join(f"{k} = {v!r}" for k, v in contract.default_args.items())
        )
    if contract.injected:
        lines.append("injected by the container: " + ", ".join(sorted(contract.injected)))
    from rich.markup import escape

    console.print(escape("\n".join(lines)), highlight=False, soft_wrap=True)


def _describe_training_arguments() -> None:
    """The valid `trainer.args` names: validation errors point here rather than list ~100 names each time."""
    from unlearn_cli.recipes.schema import TRAINER_MANAGED_ARGS, _training_arguments_schema

    _, annotations = _training_arguments_schema()
    names = [name for name in sorted(annotations) if name not in TRAINER_MANAGED_ARGS]
    console.print(
        "[dim]trainer.args: any field of transformers.TrainingArguments. Documentation: "
        "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments[/]",
        soft_wrap=True,
    )
    console.print(f"[dim]  fields: {', '.join(names)}[/]", highlight=False)
