"""`unlearn registry list|show`: what components exist and what arguments they take."""

from __future__ import annotations

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

    from pydantic import BaseModel
    from rich.markup import escape
    from rich.panel import Panel

    from unlearn_cli.recipes.schema import INJECTED_ARGUMENTS, _resolved_hints, _type_name, handler_parameters

    handler = component.load()
    hints = _resolved_hints(handler)
    injected = INJECTED_ARGUMENTS.get(component.kind, frozenset())
    parameters = handler_parameters(handler)
    if component.kind == "trainer":
        parameters = [p for p in parameters if p.kind == p.KEYWORD_ONLY]
    title = "method_args (keyword-only parameters)" if component.kind == "trainer" else "args"
    table = Table(title=f"{component.kind} '{component.name}' — {title}", title_justify="left")
    for column in ("argument", "type", "default", "note"):
        table.add_column(column, overflow="fold")
    for parameter in parameters:
        annotation = hints.get(parameter.name, parameter.annotation)
        default = "required" if parameter.default is inspect.Parameter.empty else repr(parameter.default)
        note = "injected by the pipeline" if parameter.name in injected else ""
        table.add_row(parameter.name, escape(_type_name(annotation)), escape(default), note)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for field_name, field in annotation.model_fields.items():
                field_default = "required" if field.is_required() else repr(field.default)
                table.add_row(
                    f"  {parameter.name}.{field_name}",
                    escape(_type_name(field.annotation)),
                    escape(field_default),
                    field.description or "",
                )
    if not parameters:
        table.add_row("(none)", "", "", "")
    console.print(
        Panel(
            escape(inspect.getdoc(handler) or component.description),
            title=f"{component.name}  [dim]{component.import_path}[/]",
            title_align="left",
        )
    )
    console.print(table)
    if component.kind == "trainer":
        _describe_training_arguments()


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
