"""Greedy answers to evaluation prompts, generated once per distinct prompt, in batches, and scored by ROUGE.

Prompts are the items of a `predict_with_generate` dataset: the tokens before the answer, cut from the same
tokenization training used, so a generation starts exactly where the training prompt ended. They are
sorted by length and left-padded into batches (the model's KV cache then serves every step), and each
distinct prompt is generated once however many metrics or answer options share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from unlearn_cli.errors import UserError
from unlearn_cli.evals.distributed import World
from unlearn_cli.evals.report import Reporter
from unlearn_cli.evals.scoring import (
    _cache_argument,
    _input_device,
    _left_padded,
    answer_text,
    iter_items,
    pad_token_id,
)

ROUGE_KEYS = ("rouge1_recall", "rougeL_f1", "rougeL_recall")


@dataclass(frozen=True)
class GreedySettings:
    """How answers are generated: greedy, at most `max_new_tokens`, cut at eos or a stop string."""

    max_new_tokens: int = 200
    stop_strings: tuple[str, ...] = ()

    @classmethod
    def checked(
        cls, max_new_tokens: int, stop_strings: Sequence[str] = (), *, key: str = "max_new_tokens"
    ) -> GreedySettings:
        """Settings from a recipe; a length below 1 is refused under the recipe argument `key`."""
        if max_new_tokens < 1:
            raise UserError(f"{key} must be at least 1, got {max_new_tokens}", key=key)
        return cls(max_new_tokens, tuple(stop_strings))


@dataclass(frozen=True)
class Generation:
    """One prompt, the answer it should give and the answer the model gave."""

    prompt: str
    ground_truth: str
    text: str


def rouge_scores(ground_truth: str, generated: str) -> dict[str, float]:
    """ROUGE-1 recall, ROUGE-L F1 and ROUGE-L recall of `generated` against `ground_truth` (rouge-score,
    with Porter stemming, as TOFU and MUSE report them)."""
    scorer = _scorer()
    scores = scorer.score(ground_truth, generated)
    return {
        "rouge1_recall": scores["rouge1"].recall,
        "rougeL_f1": scores["rougeL"].fmeasure,
        "rougeL_recall": scores["rougeL"].recall,
    }


_SCORER: Any = None


def _scorer() -> Any:
    global _SCORER
    if _SCORER is None:
        import logging

        from rouge_score import rouge_scorer

        logging.getLogger("absl").setLevel(logging.WARNING)
        _SCORER = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    return _SCORER


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """The text before the first stop string (any of them), stripped."""
    for stop in stop_strings:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text.strip()


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token that ends an answer: the tokenizer's eos and the model's generation eos tokens."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    return sorted(ids)


class GenerationPool:
    """Generations for prompt datasets, computed on first request for all datasets registered by then that
    share the requested settings."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int,
        world: World | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.world = world or World.current()
        self.reporter = reporter or Reporter()
        self._pending: dict[tuple[int, GreedySettings], Any] = {}
        self._done: dict[tuple[int, GreedySettings], list[Generation]] = {}
        self._texts: dict[tuple[bytes, GreedySettings], str] = {}

    def expect(self, dataset: Any, settings: GreedySettings) -> None:
        key = (id(dataset), settings)
        if key not in self._done:
            self._pending[key] = dataset

    def generations(self, dataset: Any, settings: GreedySettings) -> list[Generation]:
        key = (id(dataset), settings)
        if key not in self._done:
            self._pending[key] = dataset
            self._run(settings)
        return self._done[key]

    def _run(self, settings: GreedySettings) -> None:
        wanted = {key: ds for key, ds in self._pending.items() if key[1] == settings}
        items: dict[tuple[int, GreedySettings], list[tuple[bytes, torch.Tensor, torch.Tensor]]] = {}
        todo: dict[bytes, torch.Tensor] = {}
        for key, dataset in wanted.items():
            rows = []
            for item in iter_items(dataset):
                prompt = item["input_ids"]
                prompt_key = prompt.to(torch.int64).numpy().tobytes()
                rows.append((prompt_key, prompt, item["labels"]))
                if (prompt_key, settings) not in self._texts:
                    todo[prompt_key] = prompt
            items[key] = rows
            del self._pending[key]
        if todo:
            order = sorted(todo, key=lambda k: -len(todo[k]))
            batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
            with self.reporter.task("generating answers (greedy)", len(order)) as advance:

                def work(batch: list[bytes]) -> dict[bytes, str]:
                    texts = self._generate([todo[k] for k in batch], settings)
                    advance(len(batch))
                    return dict(zip(batch, texts, strict=True))

                generated = self.world.run_shared(batches, work)
            self._texts.update({(k, settings): text for k, text in generated.items()})
        for key, rows in items.items():
            self._done[key] = [
                Generation(
                    prompt=self.tokenizer.decode(prompt, skip_special_tokens=True),
                    ground_truth=answer_text(self.tokenizer, labels).strip(),
                    text=self._texts[(prompt_key, settings)],
                )
                for prompt_key, prompt, labels in rows
            ]

    @torch.no_grad()
    def _generate(self, prompts: Sequence[torch.Tensor], settings: GreedySettings) -> list[str]:
        tokenizer = self.tokenizer
        pad = pad_token_id(tokenizer)
        input_ids, attention = _left_padded(prompts, pad)
        device = _input_device(self.model)
        stop = _stop_check(tokenizer, settings.stop_strings)
        tokens = greedy_generate(
            self.model,
            input_ids.to(device),
            attention.to(device),
            max_new_tokens=settings.max_new_tokens,
            eos_token_ids=eos_token_ids(self.model, tokenizer),
            pad_token_id=pad,
            stop=stop,
        )
        texts = tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [cut_at_stop(text, settings.stop_strings) for text in texts]


def _stop_check(tokenizer: Any, stop_strings: Sequence[str]) -> Any:
    if not stop_strings:
        return None

    def reached(tokens: list[int]) -> bool:
        tail = tokenizer.decode(tokens[-16:], skip_special_tokens=True)
        return any(stop in tail for stop in stop_strings)

    return reached


def greedy_generate(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    stop: Any = None,
) -> list[list[int]]:
    """Greedy continuations of left-padded prompts with a KV cache, the eos left out.

    A sequence leaves the batch (and its cache rows are dropped) as soon as it emits an eos or a stop
    string, so a batch costs what its still-running sequences cost, not max_new_tokens for everyone.
    Models whose forward takes no cache argument go through `model.generate` instead.
    """
    from transformers import DynamicCache

    cache_name = _cache_argument(model)
    if cache_name is None:
        return _hf_generate(
            model, input_ids, attention_mask, max_new_tokens, eos_token_ids, pad_token_id, stop
        )
    eos = set(eos_token_ids)
    cache = DynamicCache(config=model.config)
    generated: list[list[int]] = [[] for _ in range(len(input_ids))]
    rows = list(range(len(input_ids)))
    positions = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    step_input = input_ids
    for step in range(max_new_tokens):
        logits = model(
            input_ids=step_input,
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{cache_name: cache},
        ).logits[:, -1]
        next_tokens = logits.argmax(dim=-1)
        keep = []
        for i, (row, token) in enumerate(zip(rows, next_tokens.tolist(), strict=True)):
            if token in eos:
                continue
            generated[row].append(token)
            if stop is None or not stop(generated[row]):
                keep.append(i)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(rows):
            index = torch.tensor(keep, device=attention_mask.device)
            cache.batch_select_indices(index)
            attention_mask, next_tokens = attention_mask[index], next_tokens[index]
            rows = [rows[i] for i in keep]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(rows), 1))], dim=1)
        positions = attention_mask.sum(dim=1, keepdim=True) - 1
        step_input = next_tokens[:, None]
    return generated


def _hf_generate(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    stop: Any,
) -> list[list[int]]:
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
        eos_token_id=list(eos_token_ids),
        pad_token_id=pad_token_id,
    )
    output = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
    eos = set(eos_token_ids)
    out = []
    for row in output[:, input_ids.shape[1] :].tolist():
        tokens: list[int] = []
        for token in row:
            if token in eos:
                break
            tokens.append(token)
            if stop is not None and stop(tokens):
                break
        out.append(tokens)
    return out
