"""The base of every unlearning method: a `transformers.Trainer` over forget/retain batches.

A method subclasses `UnlearningTrainer`, declares its `MethodArgs` (a pydantic model: the recipe's
`[trainer.method_args]`), and implements `loss_terms`, returning its named terms (e.g. "forget", "retain"),
each already divided by the right denominator; `term_weights` gives the weight of each (gamma, alpha). The
base class does the rest:

- **denominators across the whole step**: for every part of the batch (`forget`, `retain`,
  `forget.original`...) it counts labelled tokens and labelled sequences over every micro-batch of the
  optimizer step and every rank, and hands the counts to `loss_terms`. A token-mean term divides its sum by
  the step's token count, a sequence-mean term by its sequence count; so batch 2 and batch 1 × accumulation
  2 (or 2 ranks) give the same update. A method that divides by something else (e.g. CE-U, which skips the
  first answer tokens of each sequence) returns its per-micro-batch counts from `extra_counts`; they are
  summed the same way and reach `loss_terms` as `counts.extra`.
- **each term logged on its own** (`forget_loss`, `retain_loss`, ...), next to transformers' `loss`.
- **the reference**: `self.reference` (a frozen model, or None) and `ref_logp` in the items when
  log-probabilities were precomputed (`reference_log_probs` reads whichever is there).
- the shared **retain term** (`retain_loss_type`: NLL on retain answers, or KL to the reference).

Everything `TrainingArguments` offers keeps working: accumulation, accelerate launches, logging,
checkpointing, schedulers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import Trainer, TrainerCallback

from unlearn_cli.trainers.contract import ReferenceNeed, TrainerContract
from unlearn_cli.trainers.finetune import FinetuneTrainer
from unlearn_cli.trainers.losses import labelled_tokens, sequence_log_probs, token_kl, token_mean, token_nll
from unlearn_cli.trainers.reference import FrozenReference, model_inputs

UNLEARNING_ARGS = {"remove_unused_columns": False}
"""Nested {forget, retain} batches must reach `compute_loss` whole; transformers would empty them."""


class UnlearningArgs(BaseModel):
    """Knobs every method with a forget and a retain term shares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gamma: float = Field(1.0, ge=0, allow_inf_nan=False, description="weight of the forget term")
    alpha: float = Field(1.0, ge=0, allow_inf_nan=False, description="weight of the retain term")
    retain_loss_type: Literal["NLL", "KL"] = Field(
        "NLL", description="retain term: NLL of retain answers, or KL to the reference model on them"
    )


class ReferenceLogProbArgs(BaseModel):
    """For methods that compare the model's answer log-probabilities with the reference's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref_log_probs: Literal["cached", "per_step"] = Field(
        "cached",
        description="'cached': computed once before training, no reference model held (exact); "
        "'per_step': a frozen reference model scores every batch",
    )


@dataclass(frozen=True)
class PartCounts:
    """Labelled tokens and labelled sequences of one batch part over a whole optimizer step."""

    tokens: torch.Tensor
    sequences: torch.Tensor


ExtraCounts = Callable[[Mapping[str, Any]], dict[str, torch.Tensor]]
"""A method's own counts of one micro-batch, by name (see `UnlearningTrainer.extra_counts`)."""


class BatchCounts(Mapping[str, PartCounts]):
    """Per part ("forget", "retain", "forget.original"...), the counts a loss term divides by.

    `extra` holds a method's own counts by name (`UnlearningTrainer.extra_counts`), over the same step.
    `scale` is the number of ranks averaging gradients: the loss is multiplied by it so that the ranks'
    mean gradient is the gradient of the global sum divided by the global count.
    """

    def __init__(
        self, parts: dict[str, PartCounts], scale: int = 1, extra: dict[str, torch.Tensor] | None = None
    ) -> None:
        self._parts = parts
        self.scale = scale
        self.extra = extra or {}

    def __getitem__(self, part: str) -> PartCounts:
        return self._parts[part]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    @classmethod
    def of(cls, batches: list[dict[str, Any]], extra_counts: ExtraCounts | None = None) -> BatchCounts:
        """Counts summed over the micro-batches of one step (this process only)."""
        totals: dict[str, list[torch.Tensor]] = {}
        extra: dict[str, list[torch.Tensor]] = {}
        for batch in batches:
            for path, part in batch_parts(batch):
                tokens = labelled_tokens(part["labels"])
                counts = torch.stack([tokens.sum(), (tokens > 0).sum()])
                totals.setdefault(path, []).append(counts)
            for name, value in (extra_counts(batch) if extra_counts is not None else {}).items():
                extra.setdefault(name, []).append(torch.as_tensor(value, dtype=torch.long))
        return cls(
            {path: PartCounts(*torch.stack(values).sum(0)) for path, values in totals.items()},
            extra={name: torch.stack(values).sum() for name, values in extra.items()},
        )

    def to(self, device: Any) -> BatchCounts:
        return BatchCounts(
            {k: PartCounts(v.tokens.to(device), v.sequences.to(device)) for k, v in self._parts.items()},
            self.scale,
            {name: value.to(device) for name, value in self.extra.items()},
        )


def batch_parts(batch: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every labelled sequence batch inside a (nested) batch, with its dotted path."""
    for key, value in batch.items():
        if isinstance(value, Mapping):
            path = f"{prefix}{key}"
            if "labels" in value and "input_ids" in value:
                yield path, value
            yield from batch_parts(value, prefix=f"{path}.")


class _TrainerBookkeeping(TrainerCallback):
    """Tell the forget/retain dataset which epoch starts, so its pairing is a function of (seed, epoch);
    count logged term means from the step training starts at (a resumed run starts past step 0); and start
    each optimizer step's term sums afresh."""

    def __init__(self, trainer: UnlearningTrainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.trainer._term_sums = {}
        self.trainer._terms_logged_at = state.global_step

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.trainer._step_terms = {}

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        dataset = self.trainer.train_dataset
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(math.floor(state.epoch + 1e-6))


FORGET_ONLY = TrainerContract(
    command="unlearn",
    splits=("forget",),
    optional_splits=("retain",),
    default_args=UNLEARNING_ARGS,
    fixed_args=UNLEARNING_ARGS,
    injected=frozenset({"method_args", "reference"}),
)
"""A method that reads only forget data (a retain split, if the recipe has one, is scored before and after
unlearning but not paired with the forget items)."""

FORGET_RETAIN = replace(FORGET_ONLY, splits=("forget", "retain"), optional_splits=())
"""A method with a forget and a retain term."""


class UnlearningTrainer(FinetuneTrainer):
    """Base of the unlearning methods: forget/retain batches, per-term denominators and logs, a reference."""

    contract: ClassVar[TrainerContract] = FORGET_RETAIN
    MethodArgs: ClassVar[type[BaseModel]] = UnlearningArgs
    loss_is_scaled_for_ga = True

    def __init__(
        self, *args: Any, method_args: BaseModel | None = None, reference: Any = None, **kwargs: Any
    ):
        self.method = method_args if method_args is not None else self.MethodArgs()
        self.reference: FrozenReference | None = reference
        super().__init__(*args, **kwargs)
        if self.reference is not None:
            self.reference.place(self)  # on each rank's device; under ZeRO-3 partitioned like the model
        self._term_sums: dict[str, torch.Tensor] = {}
        self._step_terms: dict[str, torch.Tensor] = {}
        self._terms_logged_at = 0
        self.add_callback(_TrainerBookkeeping(self))

    # --- what a method declares ----------------------------------------------------------------------------

    @classmethod
    def reference_need(cls, method_args: BaseModel) -> ReferenceNeed:
        """What the method needs from the initial model (default: a frozen model for a KL retain term)."""
        return ReferenceNeed(model=getattr(method_args, "retain_loss_type", None) == "KL")

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        """The method's loss terms by name, each divided by its denominator from `counts`."""
        raise NotImplementedError

    def term_weights(self) -> dict[str, float]:
        """The weight of each term in the total loss (read every step, so a method may change them)."""
        return {"forget": getattr(self.method, "gamma", 1.0), "retain": getattr(self.method, "alpha", 1.0)}

    def extra_counts(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Denominators beyond labelled tokens and sequences: the method's named counts in one micro-batch.

        The base sums them over the step's micro-batches and ranks, like its own counts, and hands them to
        `loss_terms` as `counts.extra[name]`. None by default.
        """
        return {}

    # --- shared pieces -------------------------------------------------------------------------------------

    def retain_loss(self, model: Any, retain: Mapping[str, Any], counts: PartCounts) -> torch.Tensor:
        """The retain term: token-mean NLL of the retain answers, or token-mean KL to the reference."""
        return token_mean(*self.retain_token_losses(model, retain), counts.tokens)

    def retain_token_losses(self, model: Any, retain: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The retain term at each next-token position [B, T-1] (0 where unlabelled), and the label mask."""
        logits = model(**model_inputs(retain)).logits
        if getattr(self.method, "retain_loss_type", "NLL") == "KL":
            if self.reference is None:
                raise RuntimeError("retain_loss_type 'KL' needs a reference model; the container gives one")
            return token_kl(logits, self.reference(**retain).logits, retain["labels"])
        return token_nll(logits, retain["labels"])

    def reference_log_probs(self, part: Mapping[str, Any]) -> torch.Tensor:
        """log π_ref(y|x) of each sequence of a batch part: precomputed (`ref_logp`) or from the reference."""
        cached = part.get("ref_logp")
        if cached is not None:
            return cached.float()
        if self.reference is None:
            raise RuntimeError("reference log-probabilities were neither precomputed nor computable")
        return sequence_log_probs(self.reference(**part).logits, part["labels"])

    # --- transformers hooks --------------------------------------------------------------------------------

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> Any:
        """Counts per batch part over the step's micro-batches and, when launched on several, all ranks."""
        if not batch_samples or not any(True for _ in batch_parts(batch_samples[0])):
            return super()._get_num_items_in_batch(batch_samples, device)
        counts = BatchCounts.of(batch_samples, self.extra_counts).to(device)
        world = self.args.world_size
        if world > 1:
            names, extra_names = sorted(counts), sorted(counts.extra)
            values = [count for n in names for count in (counts[n].tokens, counts[n].sequences)]
            values += [counts.extra[n] for n in extra_names]
            summed = self.accelerator.gather(torch.stack(values).unsqueeze(0)).sum(0)
            counts = BatchCounts(
                {n: PartCounts(summed[2 * i], summed[2 * i + 1]) for i, n in enumerate(names)},
                scale=world,
                extra={n: summed[2 * len(names) + i] for i, n in enumerate(extra_names)},
            )
        return counts

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        if not any(True for _ in batch_parts(inputs)):  # a plain eval batch: the model's own LM loss
            plain = {**model_inputs(inputs), "labels": inputs["labels"]}
            return super().compute_loss(model, plain, return_outputs, None)
        counts = (
            num_items_in_batch
            if isinstance(num_items_in_batch, BatchCounts)
            else BatchCounts.of([inputs], self.extra_counts)
        )
        terms = self.loss_terms(model, inputs, counts)
        weights = self.term_weights()
        loss = torch.stack([weights.get(name, 1.0) * value for name, value in terms.items()]).sum()
        if model.training:
            for name, value in terms.items():
                detached = value.detach() * counts.scale
                self._term_sums[name] = self._term_sums.get(name, torch.zeros_like(detached)) + detached
                self._step_terms[name] = self._step_terms.get(name, torch.zeros_like(detached)) + detached
        loss = loss * counts.scale
        return (loss, None) if return_outputs else loss

    @property
    def step_terms(self) -> Mapping[str, torch.Tensor]:
        """Each term of the current optimizer step, summed over its micro-batches so far (read-only): the
        run's divergence guard names the term that stopped being finite, PDU's dual ascent reads the retain
        term."""
        return MappingProxyType(self._step_terms)

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        if "input_ids" in inputs:
            return super().floating_point_ops(inputs)
        return sum(Trainer.floating_point_ops(self, dict(part)) for _, part in batch_parts(inputs))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add each term's mean since the last log (over steps, across ranks) next to transformers' loss."""
        if "loss" in logs and self._term_sums:
            steps = max(self.state.global_step - self._terms_logged_at, 1)
            for name in sorted(self._term_sums):
                total = self.accelerator.gather(self._term_sums[name].reshape(1)).mean()
                logs[f"{name}_loss"] = float(total) / steps
            self._term_sums = {}
            self._terms_logged_at = self.state.global_step
        super().log(logs, start_time)
