"""The one place where a validated recipe becomes a run: every piece a command runs is built here.

A dependency-injector container holds the validated recipe and builds, in order: the trainer's contract and
method arguments, the `TrainingArguments` (toolkit defaults < the trainer's defaults < the recipe), the
tokenizer (once), the datasets of each split (tokenizer and template_args injected), the training dataset
the contract asks for (the `train` datasets concatenated, or the forget/retain composite), the collator,
the model (once), the reference (a frozen model, or log-probabilities precomputed with the initial model)
and the trainer; and the recipe's evaluators (`[eval.NAME]` benchmarks), which `unlearn eval` runs and a
training run runs through a callback. A command asks for `trainer()` (or `evaluators()`, `model()`...),
runs it and saves what it produced. Components stay plain classes that receive what they need as
constructor arguments, so each one is testable without the container; tests swap one piece with
``pipeline.model.override(providers.Object(tiny_model))`` and keep the real wiring.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from unlearn_cli.distributed import prepared_once, zero3_enabled
from unlearn_cli.errors import UserError
from unlearn_cli.precision import check_mixed_precision
from unlearn_cli.recipes.schema import ComponentSpec, ValidatedRecipe
from unlearn_cli.trainers.contract import (
    ReferenceNeed,
    TrainerContract,
    contract_of,
    method_args_model,
    reference_need,
)


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


def _require(recipe: ValidatedRecipe, section: str) -> Any:
    value = getattr(recipe, section)
    if value is None:
        raise UserError(f"the recipe has no [{section}] section", file=str(recipe.recipe.source), key=section)
    return value


# --- the trainer's declarations ----------------------------------------------------------------------------


def trainer_class(recipe: ValidatedRecipe) -> Any:
    return _require(recipe, "trainer").component.load()


def method_arguments(recipe: ValidatedRecipe) -> Any:
    """The validated `[trainer.method_args]`: the trainer's MethodArgs instance, or a dict of keywords."""
    return _require(recipe, "trainer").method_args


def build_training_arguments(recipe: ValidatedRecipe, contract: TrainerContract, output_dir: Path) -> Any:
    """`transformers.TrainingArguments`: toolkit defaults < the trainer's defaults < `trainer.args`."""
    import torch
    from transformers import TrainingArguments

    spec = _require(recipe, "trainer")
    args = {
        "seed": recipe.run.seed,
        "report_to": "none",
        "dataloader_pin_memory": torch.cuda.is_available(),
        **contract.default_args,
        **spec.args,
    }
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Without use_cpu, transformers runs every CPU rank as an independent single process.
        args.setdefault("use_cpu", not torch.cuda.is_available())
        args.setdefault("ddp_find_unused_parameters", False)
    check_mixed_precision(recipe, args)
    try:
        return TrainingArguments(output_dir=str(output_dir), **args)
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"transformers rejected the training arguments: {exc}",
            file=recipe.recipe.origin(("trainer", "args")),
            key="trainer.args",
        ) from None


# --- tokenizer, data, collator, model ----------------------------------------------------------------------


def build_tokenizer(recipe: ValidatedRecipe) -> Any:
    from unlearn_cli.models.loading import load_tokenizer

    model = _require(recipe, "model")
    default_path = getattr(model.args["model_args"], "pretrained_model_name_or_path", None)
    try:
        with prepared_once():  # a download or a builtin asset, made by one rank and read by the others
            tokenizer = load_tokenizer(model.tokenizer_args, default_path=default_path)
    except UserError as exc:
        raise _located_in_recipe(exc, recipe) from None
    template_args = model.template_args
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


def _template_args(recipe: ValidatedRecipe) -> Any:
    return recipe.model.template_args if recipe.model is not None else None


def build_datasets(
    recipe: ValidatedRecipe, tokenizer: Any, template_args: Any, split: str, model: Any = None
) -> dict[str, Any]:
    """Every dataset of one split, by its recipe name; under a launch, loaded and tokenized by rank 0 first
    (then once per other node), the other ranks reading the datasets cache.

    `model` is the model's provider: a handler that names a `model` parameter (one that generates its items
    with the run's model) gets the model, which is otherwise not loaded to build data.
    """
    specs = recipe.data.get(split)
    if not specs:
        raise UserError(
            f"the recipe has no datasets under [data.{split}]",
            file=str(recipe.recipe.source),
            key=f"data.{split}",
            hint=f"add [data.{split}.NAME] with a handler and args",
        )
    built = {}
    with prepared_once():
        for name, spec in specs.items():
            wants_model = model is not None and "model" in inspect.signature(spec.component.load()).parameters
            if wants_model and zero3_enabled():
                raise UserError(
                    f"dataset '{name}' generates its items with the model, which under DeepSpeed ZeRO-3 "
                    "every process must load and run together; the data is prepared by one process first",
                    file=recipe.recipe.origin(("data", split, name)),
                    key=f"data.{split}.{name}",
                    hint="run recipes with generated items with the DDP, FSDP or ZeRO-2 accelerate config",
                )
            extra = {"model": model()} if wants_model else {}
            built[name] = _build_component(
                recipe, spec, tokenizer=tokenizer, template_args=template_args, **extra
            )
    return built


def _check_items(
    recipe: ValidatedRecipe, contract: TrainerContract, split: str, name: str, dataset: Any
) -> None:
    """Each dataset must give items of the shape the trainer reads: sequences with labels, or pairs."""
    key = f"data.{split}.{name}"
    file = recipe.recipe.origin(("data", split, name))
    handler = recipe.data[split][name].component.name
    if len(dataset) == 0:
        raise UserError(f"dataset '{name}' has no items", file=file, key=key, hint="check hf_args")
    item = dataset[0]
    trainer = _require(recipe, "trainer").component.name
    if contract.item_shape(split) == "pair":
        if not all(isinstance(item.get(part), dict) for part in ("original", "alternate")):
            raise UserError(
                f"trainer '{trainer}' reads pairs of answers from [data.{split}] ({{original, alternate}} "
                f"items); {handler} gives items made of {', '.join(sorted(item))}",
                file=file,
                key=f"{key}.handler",
                hint="use QAwithIdkDataset with paired = true, or QAwithAlternateDataset",
            )
        sequences = [item["original"], item["alternate"]]
    else:
        sequences = [item]
    for sequence in sequences:
        if "input_ids" not in sequence or "labels" not in sequence:
            raise UserError(
                f"{handler} gives items made of {', '.join(sorted(sequence))}; trainer '{trainer}' needs "
                f"items with input_ids and labels in [data.{split}]",
                file=file,
                key=f"{key}.handler",
                hint="paired datasets (original/alternate) are for preference methods such as DPO; "
                "use QADataset here",
            )
        if len(sequence["input_ids"]) != len(sequence["labels"]):
            raise UserError(
                f"{handler} items are prompts with separate targets (predict_with_generate), not training "
                "sequences",
                file=file,
                key=f"{key}.args.predict_with_generate",
                hint="set predict_with_generate = false for training data",
            )


def combine(datasets: dict[str, Any]) -> Any:
    """One dataset from a split's named datasets (concatenated in recipe order)."""
    from torch.utils.data import ConcatDataset

    parts = list(datasets.values())
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def build_split_datasets(recipe: ValidatedRecipe, contract: TrainerContract, datasets: Any) -> dict[str, Any]:
    """Each split the trainer reads (and `eval`), its named datasets checked and concatenated."""
    result = {}
    for split in contract.allowed_splits:
        if split not in recipe.data:
            continue
        named = datasets(split=split)
        if split != "eval":
            for name, dataset in named.items():
                _check_items(recipe, contract, split, name, dataset)
        result[split] = combine(named)
    return result


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
    model_spec = _require(recipe, "model")
    try:
        model = model_spec.component.load()(**model_spec.args)
    except UserError as exc:
        raise _located_in_recipe(exc, recipe) from None
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None and len(tokenizer) > embeddings.num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    return model


def build_trained_model(recipe: ValidatedRecipe, base_model: Any) -> Any:
    """What training updates: the model itself, or with `[model.peft]` a fresh adapter over it."""
    from unlearn_cli.models.adapters import apply_adapter

    config = getattr(recipe.model, "peft", None)
    if config is None:
        return base_model
    try:
        return apply_adapter(base_model, config)
    except UserError as exc:
        raise _located_in_recipe(exc, recipe) from None


# --- the reference -----------------------------------------------------------------------------------------


def _check_adapter_reference(recipe: ValidatedRecipe, model: Any) -> None:
    from unlearn_cli.models.adapters import check_reference_source, is_peft_model

    config = getattr(recipe.model, "peft", None)
    if is_peft_model(model) and config is not None:
        try:
            check_reference_source(config)
        except UserError as exc:
            raise _located_in_recipe(exc, recipe) from None


def build_reference_model(need: ReferenceNeed, model: Any, recipe: ValidatedRecipe, tokenizer: Any) -> Any:
    """The initial model when the method reads it every step; else nothing in memory.

    A PEFT model is its own reference with the adapter disabled (no copy). Otherwise a frozen copy: under
    DeepSpeed ZeRO-3, whose partitioned model cannot be copied, loaded again (partitioned as it loads).
    """
    from unlearn_cli.models.adapters import is_peft_model
    from unlearn_cli.trainers.reference import AdapterDisabledReference, FrozenReference

    if not need.model:
        return None
    if is_peft_model(model):
        _check_adapter_reference(recipe, model)
        return AdapterDisabledReference(model)
    if zero3_enabled():
        return FrozenReference(build_model(recipe, tokenizer), copy_model=False)
    return FrozenReference(model)


def build_reference_log_probs(
    need: ReferenceNeed,
    model: Any,
    split_datasets: dict[str, Any],
    collator: Any,
    training_args: Any,
    recipe: ValidatedRecipe,
) -> dict[str, dict[tuple[str, ...], Any]]:
    """Per split, the initial model's summed answer log-probabilities of each item part the method reads.

    Computed before training from the model the recipe loads — also when a run resumes from a checkpoint,
    whose weights are loaded later — so they always belong to the model before unlearning; with a PEFT
    adapter, with the adapter disabled. Each distinct sequence is scored once (pairs sharing a question and
    its answer repeat that answer). Under a launch each rank computes an equal share and every rank receives
    all of them (ZeRO-3: every rank takes part in every forward, on the gathered weights).
    """
    from functools import partial

    from torch.utils.data import Subset

    from unlearn_cli.distributed import share_across_ranks, whole_weights
    from unlearn_cli.models.adapters import adapter_disabled
    from unlearn_cli.trainers.reference import compute_reference_log_probs, distinct_items

    if need.model or not need.log_probs:
        return {}
    _check_adapter_reference(recipe, model)
    if not zero3_enabled():
        model.to(training_args.device)
    result: dict[str, dict[tuple[str, ...], Any]] = {}
    with whole_weights(model), adapter_disabled(model):
        for part in need.log_probs:
            split, *keys = part.split(".")
            path = tuple(keys)
            firsts, rows = distinct_items(split_datasets[split], path)
            score = partial(
                compute_reference_log_probs,
                model,
                Subset(split_datasets[split], firsts),
                collator,
                [path],
                device=training_args.device,
                batch_size=training_args.per_device_eval_batch_size,
            )
            distinct = share_across_ranks(len(firsts), score, training_args.device)[path]
            result.setdefault(split, {})[path] = distinct[rows]
    return result


# --- what is trained ---------------------------------------------------------------------------------------


def build_train_dataset(
    recipe: ValidatedRecipe,
    contract: TrainerContract,
    split_datasets: dict[str, Any],
    reference_log_probs: dict[str, dict[tuple[str, ...], Any]],
) -> Any:
    """`train` for fine-tuning; for unlearning the forget/retain composite anchored on `[data] anchor`.

    A method that reads no retain data gets forget items alone (its recipe's retain split, if any, is only
    scored before and after), unless retain items anchor the epochs.
    """
    from unlearn_cli.trainers.reference import WithReferenceLogProbs

    splits = dict(split_datasets)
    for split, log_probs in reference_log_probs.items():
        splits[split] = WithReferenceLogProbs(splits[split], log_probs)
    if contract.splits == ("train",):
        return splits["train"]
    from unlearn_cli.data.forget_retain import ForgetRetainDataset

    anchor = recipe.anchor or "forget"
    paired = "retain" in contract.splits or anchor == "retain"
    try:
        return ForgetRetainDataset(
            forget=splits["forget"],
            retain=splits.get("retain") if paired else None,
            anchor=anchor,
            seed=recipe.run.seed,
        )
    except UserError as exc:
        raise exc.located(file=recipe.recipe.origin(("data", "anchor")), key="data.anchor") from None


def build_trainer(
    recipe: ValidatedRecipe,
    trainer_class: Any,
    contract: TrainerContract,
    method_args: Any,
    model: Any,
    tokenizer: Any,
    collator: Any,
    train_dataset: Any,
    split_datasets: dict[str, Any],
    training_args: Any,
    reference_model: Any,
    evaluation_callbacks: list[Any] | None = None,
) -> Any:
    """The recipe's trainer over the assembled pieces (with the evaluation callback when the recipe has
    evaluators)."""
    from unlearn_cli.evals.callback import schedule_without_eval_dataset

    injected: dict[str, Any] = {}
    if method_args_model(trainer_class) is not None:
        injected["method_args"] = method_args
    else:
        injected.update(method_args)
    if "reference" in contract.injected:
        injected["reference"] = reference_model
    callbacks = list(evaluation_callbacks or [])
    try:
        with schedule_without_eval_dataset(training_args, callbacks, split_datasets.get("eval")):
            trainer = trainer_class(
                model=model,
                args=training_args,
                train_dataset=train_dataset,
                eval_dataset=split_datasets.get("eval"),
                data_collator=collator,
                processing_class=tokenizer,
                **injected,
            )
    except UserError as exc:
        raise _located_in_recipe(exc.under("trainer.method_args") if exc.key else exc, recipe) from None
    for callback in callbacks:
        trainer.add_callback(callback)
    return trainer


# --- evaluation --------------------------------------------------------------------------------------------


def build_evaluators(recipe: ValidatedRecipe, tokenizer: Any, template_args: Any) -> dict[str, Any]:
    """The recipe's `[eval.NAME]` benchmarks (arguments checked; no data loaded until they evaluate), each
    named after its section: it writes `NAME_EVAL.json`, `NAME_SUMMARY.json`..."""
    evaluators = {}
    for name, spec in recipe.evaluators.items():
        evaluators[name] = _build_component(recipe, spec, tokenizer=tokenizer, template_args=template_args)
        evaluators[name].name = name
    return evaluators


def build_evaluation_callbacks(
    recipe: ValidatedRecipe, evaluators: Any, output_dir: Path, split_datasets: dict[str, Any]
) -> list[Any]:
    """For `train`/`unlearn`: a callback running the evaluators during training, when the recipe has any."""
    if not recipe.evaluators:
        return []
    if zero3_enabled():
        raise UserError(
            "evaluation during training runs forward passes that, under DeepSpeed ZeRO-3, every process must "
            "make together, and the benchmarks share their items out unevenly",
            file=recipe.recipe.origin(("eval",)),
            key="eval",
            hint="remove [eval] from the training recipe (~eval) and evaluate the saved model afterwards "
            "with `unlearn eval`, or train with the DDP, FSDP or ZeRO-2 accelerate config",
        )
    from unlearn_cli.evals.callback import EvaluationCallback

    return [
        EvaluationCallback(
            evaluators(),
            output_dir,
            has_eval_dataset="eval" in split_datasets,
            recipe_file=recipe.recipe.origin(("eval",)),
        )
    ]


class Pipeline(containers.DeclarativeContainer):
    """recipe → contract → training args → tokenizer → datasets → collator → model → reference → trainer;
    evaluators (and, for training, their callback)."""

    recipe = providers.Dependency(instance_of=ValidatedRecipe)
    output_dir = providers.Callable(lambda recipe: recipe.output_dir, recipe)

    trainer_class = providers.Callable(trainer_class, recipe)
    contract = providers.Callable(contract_of, trainer_class)
    method_args = providers.Callable(method_arguments, recipe)
    reference_need = providers.Callable(reference_need, trainer_class, method_args)
    training_args = providers.Singleton(build_training_arguments, recipe, contract, output_dir)

    tokenizer = providers.Singleton(build_tokenizer, recipe)
    template_args = providers.Callable(_template_args, recipe)
    base_model = providers.Singleton(build_model, recipe, tokenizer)
    model = providers.Singleton(build_trained_model, recipe, base_model)
    datasets = providers.Factory(build_datasets, recipe, tokenizer, template_args, model=model.provider)
    split_datasets = providers.Singleton(build_split_datasets, recipe, contract, datasets.provider)
    collator = providers.Singleton(build_collator, recipe, tokenizer)

    reference_log_probs = providers.Singleton(
        build_reference_log_probs, reference_need, model, split_datasets, collator, training_args, recipe
    )
    reference_model = providers.Singleton(build_reference_model, reference_need, model, recipe, tokenizer)
    evaluators = providers.Singleton(build_evaluators, recipe, tokenizer, template_args)
    evaluation_callbacks = providers.Singleton(
        build_evaluation_callbacks, recipe, evaluators.provider, output_dir, split_datasets
    )
    train_dataset = providers.Singleton(
        build_train_dataset, recipe, contract, split_datasets, reference_log_probs
    )
    trainer = providers.Singleton(
        build_trainer,
        recipe,
        trainer_class,
        contract,
        method_args,
        model,
        tokenizer,
        collator,
        train_dataset,
        split_datasets,
        training_args,
        reference_model,
        evaluation_callbacks,
    )


def pipeline_for(recipe: ValidatedRecipe, **overrides: Any) -> Pipeline:
    """The container for one validated recipe; `overrides` replace providers by name with fixed objects."""
    pipeline = Pipeline(recipe=recipe)
    for name, value in overrides.items():
        getattr(pipeline, name).override(providers.Object(value))
    return pipeline
