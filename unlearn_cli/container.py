"""The one place where a validated recipe becomes live objects.

A dependency-injector container holds the validated recipe and builds, in order: the tokenizer (once),
the datasets of each split (tokenizer and template_args injected), the collator (tokenizer injected), the
model (once) and the trainer. Components stay plain classes that receive what they need as constructor
arguments, so each one is testable without the container.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from unlearn_cli.errors import UserError
from unlearn_cli.recipes.schema import ComponentSpec, ValidatedRecipe


def _accepts(handler: Any, name: str) -> bool:
    parameters = inspect.signature(handler).parameters
    return name in parameters or any(p.kind == p.VAR_KEYWORD for p in parameters.values())


def _build_component(recipe: ValidatedRecipe, spec: ComponentSpec, **injected: Any) -> Any:
    handler = spec.component.load()
    arguments = dict(spec.args)
    arguments.update({name: value for name, value in injected.items() if _accepts(handler, name)})
    try:
        return handler(**arguments)
    except UserError as exc:
        raise _located_in_recipe(exc.under(f"{spec.key}.args"), recipe) from None


def _located_in_recipe(error: UserError, recipe: ValidatedRecipe) -> UserError:
    """The error with the file that set its key (a base recipe, or the command line) filled in."""
    path = tuple(error.key.split(".")) if error.key else ("model",)
    return error.located(file=recipe.recipe.origin(path))


def build_tokenizer(recipe: ValidatedRecipe) -> Any:
    from unlearn_cli.models.loading import load_tokenizer

    if recipe.model is None:
        raise UserError("the recipe has no [model] section", file=str(recipe.recipe.source), key="model")
    model_args = recipe.model.args["model_args"]
    default_path = getattr(model_args, "pretrained_model_name_or_path", None)
    try:
        tokenizer = load_tokenizer(recipe.model.tokenizer_args, default_path=default_path)
    except UserError as exc:
        raise _located_in_recipe(exc, recipe) from None
    template_args = recipe.model.template_args
    if template_args is not None and template_args.apply_chat_template and not tokenizer.chat_template:
        key = ("model", "template_args", "apply_chat_template")
        raise UserError(
            "apply_chat_template is true but the tokenizer has no chat template",
            file=recipe.recipe.origin(key),
            key=".".join(key),
            hint="set it to false and give user/assistant tags (see docs/models.md), or use an instruct "
            "model's tokenizer",
        )
    return tokenizer


def build_datasets(recipe: ValidatedRecipe, tokenizer: Any, template_args: Any, split: str) -> dict[str, Any]:
    """Every dataset of one split, by its recipe name."""
    specs = recipe.data.get(split)
    if not specs:
        raise UserError(
            f"the recipe has no datasets under [data.{split}]",
            file=str(recipe.recipe.source),
            key=f"data.{split}",
            hint=f"add [data.{split}.NAME] with a handler and args",
        )
    return {
        name: _build_component(recipe, spec, tokenizer=tokenizer, template_args=template_args)
        for name, spec in specs.items()
    }


def build_collator(recipe: ValidatedRecipe, tokenizer: Any) -> Any:
    if not recipe.collators:
        raise UserError(
            "the recipe has no [collator.NAME] section",
            file=str(recipe.recipe.source),
            key="collator",
            hint="add [collator.DataCollatorForSupervisedDataset] with "
            'handler = "DataCollatorForSupervisedDataset"',
        )
    (spec,) = recipe.collators.values()
    return _build_component(recipe, spec, tokenizer=tokenizer)


def build_model(recipe: ValidatedRecipe, tokenizer: Any) -> Any:
    """The model, its embeddings grown when the tokenizer gained a token (an added eos) it does not know."""
    if recipe.model is None:
        raise UserError("the recipe has no [model] section", file=str(recipe.recipe.source), key="model")
    try:
        model = recipe.model.component.load()(**recipe.model.args)
    except UserError as exc:
        raise _located_in_recipe(exc, recipe) from None
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None and len(tokenizer) > embeddings.num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    return model


def training_arguments(recipe: ValidatedRecipe, output_dir: Path) -> Any:
    """`transformers.TrainingArguments` from `trainer.args`, with the run's output folder and seed."""
    from transformers import TrainingArguments

    if recipe.trainer is None:
        raise UserError("the recipe has no [trainer] section", file=str(recipe.recipe.source), key="trainer")
    import torch

    args = {
        "seed": recipe.run.seed,
        "report_to": "none",
        "dataloader_pin_memory": torch.cuda.is_available(),
        **recipe.trainer.args,
    }
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Without use_cpu, transformers runs every CPU rank as an independent single process.
        args.setdefault("use_cpu", not torch.cuda.is_available())
        args.setdefault("ddp_find_unused_parameters", False)
    try:
        return TrainingArguments(output_dir=str(output_dir), **args)
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"transformers rejected the training arguments: {exc}",
            file=recipe.recipe.origin(("trainer", "args")),
            key="trainer.args",
        ) from None


def build_trainer(
    recipe: ValidatedRecipe,
    model: Any,
    tokenizer: Any,
    collator: Any,
    train_dataset: Any,
    eval_dataset: Any,
    training_args: Any,
) -> Any:
    """The recipe's trainer handler over the built pieces; `training_args` from `training_arguments`."""
    spec = recipe.trainer
    if spec is None:
        raise UserError("the recipe has no [trainer] section", file=str(recipe.recipe.source), key="trainer")
    return spec.component.load()(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        processing_class=tokenizer,
        **spec.method_args,
    )


def _template_args(recipe: ValidatedRecipe) -> Any:
    return recipe.model.template_args if recipe.model is not None else None


class Pipeline(containers.DeclarativeContainer):
    """recipe → tokenizer → datasets → collator → model → trainer."""

    recipe = providers.Dependency(instance_of=ValidatedRecipe)

    tokenizer = providers.Singleton(build_tokenizer, recipe)
    template_args = providers.Callable(_template_args, recipe)
    datasets = providers.Factory(build_datasets, recipe, tokenizer, template_args)
    collator = providers.Singleton(build_collator, recipe, tokenizer)
    model = providers.Singleton(build_model, recipe, tokenizer)
    trainer = providers.Factory(build_trainer, recipe, model, tokenizer, collator)


def pipeline_for(recipe: ValidatedRecipe) -> Pipeline:
    return Pipeline(recipe=recipe)
