"""Validation of a resolved recipe, before anything heavy (weights, data) loads.

The recipe's sections are checked with pydantic; each component's `args` are checked against its handler's
own signature (parameter names, annotations, defaults), so a handler author writes a plain typed `__init__`
and gets validation for free. `trainer.args` is checked against `transformers.TrainingArguments`, and
`trainer.method_args` against the trainer's keyword-only `__init__` parameters (its method's own knobs).
All problems found are reported together, each with the file that set the key, its path, and a fix.
"""

from __future__ import annotations

import builtins
import dataclasses
import inspect
import math
import types
import typing
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from unlearn_cli.errors import UnlearnWarning, UserError, did_you_mean
from unlearn_cli.recipes.loading import KeyPath, MergedRecipe
from unlearn_cli.registry import Catalog, Component
from unlearn_cli.trainers.contract import TrainerContract, contract_of, method_args_model

SECTIONS = ("run", "model", "data", "collator", "trainer", "eval", "vars")
"""Top-level tables a recipe may hold; other top-level keys must be plain values (free knobs)."""
TOP_LEVEL_KEYS = ("extends", "plugins")
"""Top-level keys with a meaning of their own; any other plain value is a knob that `${...}` must use."""

INJECTED_ARGUMENTS: dict[str, frozenset[str]] = {
    "model": frozenset(),
    "dataset": frozenset({"tokenizer", "template_args", "model"}),
    "collator": frozenset({"tokenizer"}),
    "benchmark": frozenset({"tokenizer", "template_args"}),
}
"""Handler parameters the container fills in; a recipe cannot set them. A dataset handler gets the run's
model (as loaded, before training) only when it names a `model` parameter (e.g. one that generates)."""

TRAINER_MANAGED_ARGS = {
    "output_dir": "set `run.output_dir` instead (the CLI passes it to the trainer)",
}


class RunSection(BaseModel):
    """`[run]`: what this run is called, where it writes, its seed, and when an unlearning run stops early."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("run", min_length=1, description="the run's name (default folder: outputs/<name>)")
    output_dir: str | None = Field(None, min_length=1, description="the run folder")
    seed: int = Field(0, ge=0, description="seed of everything random (transformers, data pairing)")
    measure_answer_nll: bool | None = None
    stop_when_retain_loss_above: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="unlearning only: stop once the logged retain loss exceeds this value (early stop)",
    )


class ModelSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    handler: str = "AutoModelForCausalLM"
    model_args: dict[str, Any] = {}
    tokenizer_args: dict[str, Any] = {}
    template_args: dict[str, Any] = {}
    peft: dict[str, Any] | None = None


class ComponentSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    handler: str | None = None
    args: dict[str, Any] = {}


class TrainerSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    handler: str
    args: dict[str, Any] = {}
    method_args: dict[str, Any] = {}


@dataclass
class ComponentSpec:
    """A component section after validation: which handler, with which (converted) arguments."""

    kind: str
    name: str
    component: Component
    args: dict[str, Any]
    key: str


@dataclass
class ModelSpec:
    component: Component
    args: dict[str, Any]
    tokenizer_args: dict[str, Any]
    template_args: Any
    peft: Any = None
    """`[model.peft]` as peft's config object (e.g. a `LoraConfig`), or None: train the whole model."""


@dataclass
class TrainerSpec:
    """`[trainer]` after validation; `method_args` is the trainer's `MethodArgs` instance (or, for a trainer
    whose knobs are keyword-only `__init__` parameters, a dict of them)."""

    component: Component
    args: dict[str, Any]
    method_args: Any
    contract: TrainerContract


@dataclass
class ValidatedRecipe:
    """Everything a command needs to build its pipeline, all of it checked."""

    recipe: MergedRecipe
    catalog: Catalog
    run: RunSection
    model: ModelSpec | None = None
    data: dict[str, dict[str, ComponentSpec]] = field(default_factory=dict)
    anchor: str | None = None
    collators: dict[str, ComponentSpec] = field(default_factory=dict)
    trainer: TrainerSpec | None = None
    evaluators: dict[str, ComponentSpec] = field(default_factory=dict)
    """`[eval.NAME]` sections: benchmarks (handler + args) that `unlearn eval` runs, and `train`/`unlearn`
    run at `eval_strategy` points and at the end."""

    @property
    def values(self) -> dict[str, Any]:
        return self.recipe.values

    @property
    def output_dir(self) -> Path:
        """`run.output_dir` (with `~` expanded, as transformers does), else `outputs/<run.name>`."""
        return Path(self.run.output_dir or Path("outputs") / self.run.name).expanduser()

    def require(self, *sections: str, command: str) -> None:
        """Fail clearly when a command needs a section the recipe does not have."""
        missing = []
        for section in sections:
            node: Any = self.values
            for part in section.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if not node:
                missing.append(section)
        if missing:
            raise UserError(
                f"`unlearn {command}` needs {', '.join(f'[{m}]' for m in missing)} but the recipe has none",
                file=str(self.recipe.source),
                key=missing[0],
                hint="add the section, or extend a recipe that has it (see `unlearn recipe list`)",
            )


class _Problems:
    """Collects validation problems so the user sees them all at once."""

    def __init__(self, recipe: MergedRecipe) -> None:
        self.recipe = recipe
        self.items: list[UserError] = []

    def add(self, problem: str, path: KeyPath | str, hint: str | None = None) -> None:
        path_tuple = tuple(path.split(".")) if isinstance(path, str) else path
        self.items.append(
            UserError(problem, file=self.recipe.origin(path_tuple), key=".".join(path_tuple), hint=hint)
        )

    def extend(self, error: UserError) -> None:
        self.items.append(error)

    def raise_if_any(self) -> None:
        if len(self.items) == 1:
            raise self.items[0]
        if self.items:
            body = "\n".join("  - " + e.render().replace("\n", "\n    ") for e in self.items)
            raise UserError(f"{len(self.items)} problems in recipe {self.recipe.source}:\n{body}")


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "any value"
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        bounds = [_bound_text(item) for item in metadata]
        shown = ", ".join(bound for bound in bounds if bound)
        return f"{_type_name(base)} ({shown})" if shown else _type_name(base)
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _bound_text(metadata: Any) -> str:
    """'≥ 1' for a pydantic/annotated-types bound, '' for anything else."""
    parts = []
    for attribute in getattr(metadata, "metadata", None) or [metadata]:
        for name, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(attribute, name, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


_PLAIN_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "table", list: "list"}


def _union_members(annotation: Any) -> tuple[Any, ...]:
    """The members of a union annotation other than None (TOML has no null), or () if it is no union."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return ()
    return tuple(a for a in typing.get_args(annotation) if a is not type(None))


def _plain_name(annotation: Any, plural: bool = False) -> str:
    """How a user would call a type: 'string', 'list of strings', 'table', 'SchedulerType'."""
    origin = typing.get_origin(annotation) or annotation
    if origin in (list, tuple, set) and typing.get_args(annotation):
        return f"list of {_plain_name(typing.get_args(annotation)[0], plural=True)}"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    name = _PLAIN_NAMES.get(origin) if isinstance(origin, type) else None
    if name is None:
        name = getattr(origin, "__name__", None) or _type_name(annotation)
        return f"{name} values" if plural else name
    return f"{name}s" if plural else name


def _union_problem(annotation: Any, given: Any) -> str:
    """One message for a value no member of a union accepts (pydantic reports one error per member)."""
    members = " or ".join(_plain_name(member) for member in _union_members(annotation))
    return f"Input should be a valid {members} (got {type(given).__name__} {given!r})"


_BOUND_WORDS = {
    "greater_than_equal": "at least",
    "greater_than": "greater than",
    "less_than_equal": "at most",
    "less_than": "below",
}

_LONG_LIST = 30
"""Above this many valid names, listing them all in a hint buries the message: point to a reference."""


def _report_validation_error(
    problems: _Problems,
    error: ValidationError,
    prefix: KeyPath,
    annotations: dict[str, Any],
    known: list[str],
    what: str,
    reference: str | None = None,
) -> None:
    """Turn pydantic's errors into problems; `reference` is where to look up valid names of a long list."""
    reported_unions: set[str] = set()
    for item in error.errors():
        loc = tuple(str(part) for part in item["loc"])
        path = (*prefix, *loc)
        name = loc[0] if loc else ""
        annotation = annotations.get(name, Any)
        if item["type"] == "extra_forbidden":
            if len(known) <= _LONG_LIST or reference is None:
                fallback = f"valid arguments: {', '.join(known) or 'none'}"
            else:
                fallback = reference
            hint = did_you_mean(name, known) or fallback
            problems.add(f"unknown argument '{name}' for {what}", path, hint=hint)
        elif item["type"] == "missing":
            problems.add(
                f"missing required argument '{'.'.join(loc)}' for {what}",
                path,
                hint=f"add `{loc[-1]} = ...` ({_type_name(annotation)})",
            )
        elif len(loc) > 1 and _union_members(annotation):
            # pydantic reports one error per union member, located at `field.<member type>`: one per field
            if name not in reported_unions:
                reported_unions.add(name)
                problems.add(
                    _union_problem(annotation, item.get("input")),
                    (*prefix, name),
                    hint=f"expected {_type_name(annotation)}",
                )
        elif item["type"] in _BOUND_WORDS and item.get("ctx"):
            (limit,) = item["ctx"].values()
            problems.add(
                f"{loc[-1]} must be {_BOUND_WORDS[item['type']]} {limit}, got {item.get('input')!r}",
                path,
                hint=f"expected {_type_name(annotation)}"
                if len(loc) == 1 and annotation is not Any
                else f"give a value {_BOUND_WORDS[item['type']]} {limit}",
            )
        else:
            given = item.get("input")
            problems.add(
                f"{item['msg']} (got {type(given).__name__} {given!r})",
                path,
                hint=f"expected {_type_name(annotation)}" if len(loc) == 1 else None,
            )


class _KnownOrAny(dict):
    """Names for evaluating one annotation: the module's and builtins, and `Any` for a name that is
    neither (imported only under `if TYPE_CHECKING:`), so `dict[str, Tokenizer]` still checks a dict."""

    def __init__(self, module_globals: dict[str, Any]) -> None:
        super().__init__()
        self.module_globals = module_globals
        self.unknown: list[str] = []

    def __missing__(self, name: str) -> Any:
        if name in self.module_globals:
            return self.module_globals[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        self.unknown.append(name)
        return Any


def _resolved_hints(handler: Any) -> dict[str, Any]:
    """The handler's parameter annotations as types, also when some cannot be resolved.

    `typing.get_type_hints` fails as a whole when one annotation names something imported only for type
    checkers; then each annotation is evaluated on its own, unknown names standing for `Any` (so `int`
    next to an unresolvable `PreTrainedTokenizerBase` is still checked). A parameter whose annotation
    cannot be evaluated at all is checked as any value, and the recipe layer warns about it.
    """
    target = handler.__init__ if inspect.isclass(handler) else handler
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:
        pass
    module_globals = getattr(target, "__globals__", None) or vars(inspect.getmodule(target) or builtins)
    hints: dict[str, Any] = {}
    for name, annotation in (getattr(target, "__annotations__", None) or {}).items():
        if not isinstance(annotation, str):
            hints[name] = annotation
            continue
        namespace = _KnownOrAny(module_globals)
        try:
            hints[name] = eval(annotation, {"__builtins__": builtins}, namespace)
        except Exception:
            hints[name] = _UNRESOLVED
    return hints


_UNRESOLVED = object()
"""An annotation that could not be evaluated: checked as any value, with a warning."""


def _warn_unresolved(handler: Any, name: str, what: str) -> None:
    target = handler.__init__ if inspect.isclass(handler) else handler
    annotation = (getattr(target, "__annotations__", None) or {}).get(name)
    warnings.warn(
        f"{what}: the type hint of '{name}' ({annotation!r}) cannot be evaluated, so its value is not "
        "type-checked; fix the annotation (or import what it names at run time)",
        UnlearnWarning,
        stacklevel=2,
    )


def handler_parameters(handler: Any, *, skip: frozenset[str] = frozenset()) -> list[inspect.Parameter]:
    """Parameters a recipe may set for `handler` (not *args/**kwargs, not injected ones)."""
    signature = inspect.signature(handler)
    return [
        p
        for p in signature.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in skip and p.name != "self"
    ]


def validate_arguments(
    handler: Any,
    args: dict[str, Any],
    *,
    problems: _Problems,
    prefix: KeyPath,
    what: str,
    skip: frozenset[str] = frozenset(),
    only_keyword_only: bool = False,
) -> dict[str, Any]:
    """Check `args` against `handler`'s signature and return them converted to the annotated types."""
    parameters = handler_parameters(handler, skip=skip)
    if only_keyword_only:
        parameters = [p for p in parameters if p.kind == p.KEYWORD_ONLY]
    accepts_extra = (
        any(p.kind == p.VAR_KEYWORD for p in inspect.signature(handler).parameters.values())
        and not only_keyword_only
    )
    hints = _resolved_hints(handler)
    annotations = {p.name: hints.get(p.name, Any) for p in parameters}
    for name, annotation in list(annotations.items()):
        if annotation is _UNRESOLVED:
            annotations[name] = Any
            if name in args:
                _warn_unresolved(handler, name, what)
    for name in args:
        if name in skip:
            problems.add(
                f"'{name}' is provided by the pipeline and cannot be set in a recipe",
                (*prefix, name),
                hint=f"remove `{name}` from this table",
            )
    fields: dict[str, Any] = {
        p.name: (annotations[p.name], ... if p.default is inspect.Parameter.empty else p.default)
        for p in parameters
    }
    schema = create_model(  # type: ignore[call-overload]
        f"{getattr(handler, '__name__', 'Handler')}Args",
        __config__=ConfigDict(extra="allow" if accepts_extra else "forbid", arbitrary_types_allowed=True),
        **fields,
    )
    given = {k: v for k, v in args.items() if k not in skip}
    try:
        validated = schema.model_validate(given)
    except ValidationError as exc:
        _report_validation_error(problems, exc, prefix, annotations, [p.name for p in parameters], what)
        return {}
    converted = {name: getattr(validated, name) for name in fields if name in given}
    converted.update(validated.model_extra or {})
    return converted


@lru_cache(maxsize=1)
def _training_arguments_schema() -> tuple[type[BaseModel], dict[str, Any]]:
    from transformers import TrainingArguments

    hints = typing.get_type_hints(TrainingArguments)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(TrainingArguments):
        if f.init:
            fields[f.name] = (hints.get(f.name, Any), None)
    schema = create_model(  # type: ignore[call-overload]
        "TrainingArgumentsSchema",
        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
        **fields,
    )
    return schema, {name: spec[0] for name, spec in fields.items()}


TRAINING_ARGUMENTS_REFERENCE = (
    "see the fields of transformers.TrainingArguments in its documentation "
    "(https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments), "
    "or `unlearn registry show finetune`"
)


@dataclass(frozen=True)
class Bound:
    """A range a training argument must be in: `low` (inclusive unless `strict`), optional `high`."""

    low: float
    strict: bool = False
    high: float | None = None
    high_strict: bool = True
    why: str = ""

    def violated_by(self, value: float) -> bool:
        if value < self.low or (self.strict and value == self.low):
            return True
        return self.high is not None and (value > self.high or (self.high_strict and value == self.high))

    def text(self) -> str:
        low = f"{'greater than' if self.strict else 'at least'} {_number(self.low)}"
        if self.high is None:
            return low
        return f"{low} and {'below' if self.high_strict else 'at most'} {_number(self.high)}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


TRAINING_ARGUMENT_BOUNDS: dict[str, Bound] = {
    "learning_rate": Bound(0, why="a negative rate would climb the loss"),
    "per_device_train_batch_size": Bound(1, why="items per device per micro-batch"),
    "per_device_eval_batch_size": Bound(1),
    "gradient_accumulation_steps": Bound(1, why="micro-batches per optimizer step"),
    "num_train_epochs": Bound(0, strict=True, why="0 epochs trains nothing; set max_steps for a step count"),
    "warmup_steps": Bound(0),
    "weight_decay": Bound(0),
    "max_grad_norm": Bound(0, why="0 turns clipping off"),
    "logging_steps": Bound(0, strict=True),
    "save_steps": Bound(0, strict=True),
    "eval_steps": Bound(0, strict=True),
    "save_total_limit": Bound(1),
    "adam_beta1": Bound(0, high=1),
    "adam_beta2": Bound(0, high=1),
    "adam_epsilon": Bound(0, strict=True),
    "label_smoothing_factor": Bound(0, high=1),
    "dataloader_num_workers": Bound(0),
    "seed": Bound(0),
    "data_seed": Bound(0),
}
"""Value ranges transformers or torch would otherwise reject mid-run (or accept and misbehave on)."""


def check_training_argument_ranges(args: dict[str, Any], problems: _Problems, prefix: KeyPath) -> None:
    """Every given training argument within its range; epochs or max_steps that train at least one step."""
    for name, bound in TRAINING_ARGUMENT_BOUNDS.items():
        value = args.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if name == "num_train_epochs" and isinstance(args.get("max_steps"), int) and args["max_steps"] > 0:
            continue  # max_steps decides the length; epochs are ignored
        if math.isnan(value) or bound.violated_by(value):
            problems.add(
                f"{name} must be {bound.text()}, got {value!r}",
                (*prefix, name),
                hint=bound.why or f"give a value {bound.text()}",
            )
    max_steps = args.get("max_steps")
    if isinstance(max_steps, int) and not isinstance(max_steps, bool) and (max_steps == 0 or max_steps < -1):
        problems.add(
            f"max_steps must be at least 1 (or -1: train for num_train_epochs), got {max_steps}",
            (*prefix, "max_steps"),
            hint="set the number of optimizer steps, or remove max_steps to train for num_train_epochs",
        )


def validate_training_arguments(args: dict[str, Any], problems: _Problems, prefix: KeyPath) -> dict[str, Any]:
    """Check keys and value types of `trainer.args` against `transformers.TrainingArguments`.

    Returns the given keys with pydantic's conversions (`"1e-3"` from an override or `${env:...}` becomes a
    float), since TrainingArguments itself does not convert and torch would fail on a string much later.
    Enum-or-string fields stay strings, which TrainingArguments turns into its enums itself.
    """
    for key, why in TRAINER_MANAGED_ARGS.items():
        if key in args:
            problems.add(f"'{key}' is managed by unlearn-cli", (*prefix, key), hint=why)
    args = {k: v for k, v in args.items() if k not in TRAINER_MANAGED_ARGS}
    schema, annotations = _training_arguments_schema()
    try:
        validated = schema.model_validate(args)
    except ValidationError as exc:
        _report_validation_error(
            problems,
            exc,
            prefix,
            annotations,
            sorted(annotations),
            "transformers.TrainingArguments",
            reference=TRAINING_ARGUMENTS_REFERENCE,
        )
        return args
    converted = {name: getattr(validated, name) for name in args}
    check_training_argument_ranges(converted, problems, prefix)
    return converted


def _check_top_level(recipe: MergedRecipe, problems: _Problems) -> None:
    for key, value in recipe.values.items():
        if isinstance(value, dict) and key not in SECTIONS:
            problems.add(
                f"unknown section [{key}]",
                (key,),
                hint=did_you_mean(key, SECTIONS)
                or f"sections are {', '.join(SECTIONS)}; put free tables of your own under [vars]",
            )
        elif not isinstance(value, dict) and key in SECTIONS:
            problems.add(f"[{key}] must be a table, got {type(value).__name__} {value!r:.60}", (key,))
        elif not isinstance(value, dict) and key not in TOP_LEVEL_KEYS and key not in recipe.referenced:
            meant = did_you_mean(key, (*TOP_LEVEL_KEYS, *SECTIONS))
            if meant:  # a misspelt setting, not a knob
                problems.add(f"unknown top-level key '{key}'", (key,), hint=meant)
            else:
                warnings.warn(
                    f"{recipe.origin((key,))}: top-level key '{key}' is not used: no ${{{key}}} refers to it "
                    "(top-level values are knobs for ${...} references)",
                    UnlearnWarning,
                    stacklevel=2,
                )


def _check_no_nan(value: Any, path: KeyPath, problems: _Problems) -> None:
    """`nan` (valid TOML) is never a usable setting: it silently poisons every computation it enters."""
    if isinstance(value, float) and math.isnan(value):
        problems.add("nan is not a usable value", path, hint="write a number")
    elif isinstance(value, dict):
        for key, child in value.items():
            _check_no_nan(child, (*path, key), problems)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _check_no_nan(child, (*path, str(index)), problems)


def _section(model: type[BaseModel], value: Any, path: KeyPath, problems: _Problems) -> Any:
    if not isinstance(value, dict):
        problems.add(f"must be a table, got {type(value).__name__}", path)
        return None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        known = list(model.model_fields)
        annotations = {name: f.annotation for name, f in model.model_fields.items()}
        _report_validation_error(problems, exc, path, annotations, known, f"[{'.'.join(path)}]")
        return None


def _component(
    catalog: Catalog,
    kind: str,
    name: str,
    value: Any,
    path: KeyPath,
    problems: _Problems,
) -> ComponentSpec | None:
    section = _section(ComponentSection, value, path, problems)
    if section is None:
        return None
    handler_name = section.handler or name
    handler_path = (*path, "handler") if section.handler is not None else path
    try:
        component = catalog.get(
            kind, handler_name, file=problems.recipe.origin(handler_path), key=".".join(handler_path)
        )
    except UserError as exc:
        if section.handler is None:
            exc = UserError(
                f"no `handler` given and '{name}' is not a registered {kind} handler",
                file=exc.file,
                key=".".join((*path, "handler")),
                hint=f'add `handler = "..."`; registered: {", ".join(catalog.names(kind))}',
            )
        problems.extend(exc)
        return None
    args = validate_arguments(
        component.load(),
        section.args,
        problems=problems,
        prefix=(*path, "args"),
        what=f"{kind} handler '{handler_name}'",
        skip=INJECTED_ARGUMENTS.get(kind, frozenset()),
    )
    return ComponentSpec(kind, name, component, args, ".".join(path))


PRETRAINED_KWARGS = (
    "pretrained_model_name_or_path", "dtype", "torch_dtype", "attn_implementation", "revision",
    "trust_remote_code", "device_map", "low_cpu_mem_usage", "quantization_config", "cache_dir",
    "force_download", "local_files_only", "token", "subfolder", "use_safetensors", "variant", "max_memory",
    "offload_folder", "tp_plan", "key_mapping", "use_cache", "rope_scaling", "max_position_embeddings",
)  # fmt: skip
TOKENIZER_KWARGS = (
    "pretrained_model_name_or_path", "use_fast", "revision", "trust_remote_code", "padding_side",
    "truncation_side", "eos_token", "pad_token", "bos_token", "unk_token", "model_max_length", "cache_dir",
    "token", "subfolder", "add_bos_token", "add_eos_token", "chat_template", "legacy",
)  # fmt: skip
"""Well-known `from_pretrained` keywords: `model_args` / `tokenizer_args` pass any key on (a config
override is legitimate), but a key one letter away from one of these is a typo, not a setting."""


def _check_misspelt_passthrough(
    args: dict[str, Any], prefix: KeyPath, known: tuple[str, ...], problems: _Problems
) -> None:
    for key in args:
        if key in known:
            continue
        meant = did_you_mean(key, known)
        if meant:
            problems.add(
                f"unknown key '{key}' in [{'.'.join(prefix)}]",
                (*prefix, key),
                hint=f"{meant} (other keys are passed to from_pretrained as they are)",
            )


def _validate_model(catalog: Catalog, value: Any, problems: _Problems) -> ModelSpec | None:
    section = _section(ModelSection, value, ("model",), problems)
    if section is None:
        return None
    try:
        component = catalog.get(
            "model", section.handler, file=problems.recipe.origin(("model", "handler")), key="model.handler"
        )
    except UserError as exc:
        problems.extend(exc)
        return None
    args = validate_arguments(
        component.load(),
        {"model_args": section.model_args},
        problems=problems,
        prefix=("model",),
        what=f"model handler '{section.handler}'",
    )
    for table, known in (("model_args", PRETRAINED_KWARGS), ("tokenizer_args", TOKENIZER_KWARGS)):
        _check_misspelt_passthrough(getattr(section, table), ("model", table), known, problems)
    from unlearn_cli.data.template import TemplateArgs

    template_args = None
    try:
        template_args = TemplateArgs.model_validate(section.template_args)
    except ValidationError as exc:
        annotations = {name: f.annotation for name, f in TemplateArgs.model_fields.items()}
        _report_validation_error(
            problems, exc, ("model", "template_args"), annotations, list(annotations), "template_args"
        )
    peft = None
    if section.peft is not None:
        from unlearn_cli.models.adapters import validate_peft_config

        try:
            peft = validate_peft_config(section.peft)
        except UserError as exc:
            key = tuple((exc.key or "model.peft").split("."))
            problems.extend(exc.located(file=problems.recipe.origin(key)))
    return ModelSpec(component, args, dict(section.tokenizer_args), template_args, peft)


def validate_recipe(recipe: MergedRecipe, catalog: Catalog) -> ValidatedRecipe:
    """Check every section and component of a resolved recipe; raise one UserError listing all problems."""
    problems = _Problems(recipe)
    values = recipe.values
    _check_top_level(recipe, problems)
    _check_no_nan(values, (), problems)
    run = _section(RunSection, values.get("run", {}), ("run",), problems) or RunSection()
    validated = ValidatedRecipe(recipe=recipe, catalog=catalog, run=run)

    if "model" in values:
        validated.model = _validate_model(catalog, values["model"], problems)

    data = values.get("data", {})
    if not isinstance(data, dict):
        problems.add("must be a table of splits", ("data",))
        data = {}
    for split, datasets in data.items():
        if split == "anchor":
            continue  # checked against the trainer's contract
        if not isinstance(datasets, dict):
            problems.add(
                f"unknown key '{split}' in [data]: [data] holds `anchor` and one table per split",
                ("data", split),
                hint=did_you_mean(split, ("anchor",))
                or f'splits are tables of named datasets, e.g. [data.{split}.MY_QA] handler = "QADataset"',
            )
            continue
        if not datasets:
            problems.add(
                'must be a table of named datasets, e.g. [data.train.MY_QA] handler = "QADataset"',
                ("data", split),
            )
            continue
        validated.data[split] = {}
        for name, section in datasets.items():
            spec = _component(catalog, "dataset", name, section, ("data", split, name), problems)
            if spec is not None:
                validated.data[split][name] = spec

    collators = values.get("collator", {})
    if not isinstance(collators, dict):
        problems.add("must be a table of named collators", ("collator",))
        collators = {}
    if len(collators) > 1:
        problems.add(
            f"only one collator may be given, found {', '.join(collators)}",
            ("collator",),
            hint="remove all but one (`~collator.NAME` on the command line deletes one)",
        )
    for name, section in collators.items():
        spec = _component(catalog, "collator", name, section, ("collator", name), problems)
        if spec is not None:
            validated.collators[name] = spec

    if "trainer" in values:
        validated.trainer = _validate_trainer(catalog, values["trainer"], problems)
    _check_contract(validated, problems)
    _check_early_stop(validated, problems)
    _validate_evaluators(catalog, values.get("eval", {}), validated, problems)

    problems.raise_if_any()
    return validated


def _validate_evaluators(
    catalog: Catalog, value: Any, validated: ValidatedRecipe, problems: _Problems
) -> None:
    """`[eval.NAME]`: each a benchmark handler (default: NAME) and its arguments."""
    if not isinstance(value, dict):
        problems.add('must be a table of named benchmarks, e.g. [eval.TOFU] handler = "TOFU"', ("eval",))
        return
    for name, section in value.items():
        spec = _component(catalog, "benchmark", name, section, ("eval", name), problems)
        if spec is None:
            continue
        validated.evaluators[name] = spec
        check = getattr(spec.component.load(), "check_args", None)  # e.g. metric names, without any data
        if callable(check):
            try:
                check(spec.args)
            except UserError as exc:
                path = ("eval", name, "args", *(exc.key.split(".") if exc.key else ()))
                problems.add(exc.problem, path, hint=exc.hint)


def _validate_trainer(catalog: Catalog, value: Any, problems: _Problems) -> TrainerSpec | None:
    section = _section(TrainerSection, value, ("trainer",), problems)
    if section is None:
        return None
    try:
        component = catalog.get(
            "trainer",
            section.handler,
            file=problems.recipe.origin(("trainer", "handler")),
            key="trainer.handler",
        )
    except UserError as exc:
        problems.extend(exc)
        return None
    handler = component.load()
    contract = contract_of(handler)
    args = validate_training_arguments(section.args, problems, ("trainer", "args"))
    for name, required in contract.fixed_args.items():
        if name in args and args[name] != required:
            problems.add(
                f"trainer '{section.handler}' needs {name} = {_toml_value(required)}",
                ("trainer", "args", name),
                hint=f"remove `{name}` from [trainer.args]: the trainer sets it",
            )
    prefix = ("trainer", "method_args")
    model = method_args_model(handler)
    if model is not None:
        method_args = validate_method_args(model, section.method_args, problems, prefix, section.handler)
    else:
        method_args = validate_arguments(
            handler,
            section.method_args,
            problems=problems,
            prefix=prefix,
            what=f"trainer '{section.handler}' (its method_args are its keyword-only parameters)",
            skip=contract.injected,
            only_keyword_only=True,
        )
    return TrainerSpec(component, args, method_args, contract)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def validate_method_args(
    model: type[BaseModel], given: dict[str, Any], problems: _Problems, prefix: KeyPath, trainer: str
) -> BaseModel | None:
    """`[trainer.method_args]` against the trainer's MethodArgs model; its validated instance."""
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        annotations = {name: f.annotation for name, f in model.model_fields.items()}
        _report_validation_error(
            problems, exc, prefix, annotations, list(model.model_fields), f"trainer '{trainer}' method_args"
        )
        return None


def _check_contract(validated: ValidatedRecipe, problems: _Problems) -> None:
    """The recipe's data splits and anchor against what its trainer reads."""
    spec = validated.trainer
    if spec is None:
        return
    contract = spec.contract
    trainer = spec.component.name
    data = validated.values.get("data", {}) if isinstance(validated.values.get("data"), dict) else {}
    given = [split for split, value in data.items() if split != "anchor" and isinstance(value, dict)]
    for split in contract.splits:
        if split not in given:
            problems.add(
                f"trainer '{trainer}' needs [data.{split}.NAME] but the recipe has no {split} data",
                ("data", split),
                hint=f'add [data.{split}.NAME] with handler = "QADataset" and its args, or extend a recipe '
                "that has it (see `unlearn recipe list`)",
            )
    for split in given:
        if split not in contract.allowed_splits:
            problems.add(
                f"trainer '{trainer}' does not read [data.{split}]; it reads "
                + ", ".join(f"[data.{s}]" for s in contract.allowed_splits),
                ("data", split),
                hint=_unused_split_hint(contract, split),
            )
    for split in given:
        if split not in validated.data or split == "eval":
            continue
        wanted = contract.item_shape(split)
        for name, dataset_spec in validated.data[split].items():
            shape = _dataset_item_shape(dataset_spec)
            if shape is None or shape == wanted:
                continue
            handler = dataset_spec.component.name
            if wanted == "pair":
                problem = (
                    f"trainer '{trainer}' reads pairs of answers from [data.{split}] (an alternate answer "
                    f"preferred over the original); {handler} gives single answers"
                )
                hint = "use QAwithIdkDataset with args.paired = true, or QAwithAlternateDataset"
            else:
                problem = (
                    f"trainer '{trainer}' reads single question/answer sequences from [data.{split}]; "
                    f"{handler} gives {{original, alternate}} pairs"
                )
                hint = "use QADataset (pairs are for preference methods such as DPO)"
            problems.add(problem, ("data", split, name, "handler"), hint=hint)
    if "anchor" in data:
        anchor = data["anchor"]
        if contract.command != "unlearn":
            problems.add(
                "only unlearning recipes pair forget and retain data around an anchor",
                ("data", "anchor"),
                hint="remove `anchor` from [data]",
            )
        elif anchor not in ("forget", "retain"):
            problems.add(
                f"must be 'forget' or 'retain', got {anchor!r}",
                ("data", "anchor"),
                hint="the anchor split sets the epoch length; each of its items is paired with a random item "
                "of the other split",
            )
        elif anchor not in given:
            if anchor in contract.splits:
                return  # the missing split is reported above
            problems.add(
                f"anchor is {anchor!r} but the recipe has no {anchor} data",
                ("data", "anchor"),
                hint=f"add [data.{anchor}.NAME], or anchor on the other split",
            )
        else:
            validated.anchor = anchor


def _check_early_stop(validated: ValidatedRecipe, problems: _Problems) -> None:
    """`run.stop_when_retain_loss_above` needs a trainer that logs a retain loss."""
    if validated.run.stop_when_retain_loss_above is None or validated.trainer is None:
        return
    contract = validated.trainer.contract
    if contract.command != "unlearn" or "retain" not in contract.splits:
        name = validated.trainer.component.name
        problems.add(
            f"trainer '{name}' has no retain loss to watch"
            + (" (it is not an unlearning method)" if contract.command != "unlearn" else ""),
            ("run", "stop_when_retain_loss_above"),
            hint="remove it, or use a method with a retain term (e.g. GradDiff, NPO)",
        )


def _unused_split_hint(contract: TrainerContract, split: str) -> str:
    if contract.command == "unlearn" and split == "train":
        return (
            "unlearning reads the data to forget from [data.forget.NAME] and the data to keep from "
            "[data.retain.NAME]"
        )
    if contract.command == "train" and split in ("forget", "retain"):
        return (
            "forget/retain data is for unlearning methods (`unlearn unlearn`); fine-tuning reads "
            "[data.train.NAME]"
        )
    return f"rename the section to one the trainer reads, or remove [data.{split}]"


def _dataset_item_shape(spec: ComponentSpec) -> str | None:
    """The shape of a dataset handler's items when it says so (`item_shape(args)`), else None (unknown)."""
    decide = getattr(spec.component.load(), "item_shape", None)
    return decide(spec.args) if callable(decide) else None
