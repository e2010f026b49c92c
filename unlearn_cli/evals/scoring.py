"""One forward pass per distinct answer, shared by every metric that reads the model's token probabilities.

Probability, truth ratio, exact memorisation, extraction strength and the loss, zlib, min-k and min-k++
membership attacks all read the same thing: the log-probability of each answer token given the true prefix,
how that compares with the model's whole next-token distribution, and whether it is the greedy choice. A
`ScorePool` computes these once for every sequence the pending metrics need — all answer variants of all
items of all their datasets together, identical sequences (the same forget answers under three metrics)
once — in length-sorted batches so padding is minimal, each prompt run once for all the answers that follow
it, and hands each metric its items' `SequenceScores`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from unlearn_cli.data.template import IGNORE_INDEX
from unlearn_cli.evals.distributed import World
from unlearn_cli.evals.report import Reporter
from unlearn_cli.evals.stats import standardised_log_prob


@dataclass(frozen=True)
class SequenceScores:
    """What one teacher-forced forward pass says about one labelled sequence, token by token."""

    token_log_probs: np.ndarray
    """log p(token | true prefix) of every labelled token, in order."""
    token_zscores: np.ndarray
    """Each token's log-probability standardised over the model's next-token distribution (min-k%++)."""
    greedy_hits: np.ndarray
    """Whether each labelled token is the model's argmax prediction."""
    ends_with_eos: bool
    """Whether the last labelled token is the end-of-sequence token."""

    @property
    def tokens(self) -> int:
        return int(self.token_log_probs.size)

    @property
    def mean_nll(self) -> float:
        """Mean NLL over every labelled token, the eos included (what TOFU's probability reads)."""
        return float(-np.mean(self.token_log_probs))

    @property
    def answer(self) -> slice:
        """The tokens per-token statistics read: the labelled ones without the final eos, as the reference
        framework does, unless that would leave none (an answer of only an eos keeps it, and is scored
        instead of failing)."""
        if self.ends_with_eos and self.tokens > 1:
            return slice(0, self.tokens - 1)
        return slice(0, self.tokens)


def _key(input_ids: torch.Tensor, labels: torch.Tensor) -> bytes:
    """Identity of a scored sequence: its tokens and which of them are labelled."""
    ids = input_ids.to(torch.int64).numpy()
    labelled = (labels != IGNORE_INDEX).numpy()
    return ids.tobytes() + np.packbits(labelled).tobytes()


def iter_items(dataset: Any) -> Iterable[dict[str, Any]]:
    for position in range(len(dataset)):
        yield dataset[position]


def answer_text(tokenizer: Any, labels: torch.Tensor) -> str:
    """The labelled tokens of an item as text (special tokens left out)."""
    return tokenizer.decode(labels[labels != IGNORE_INDEX], skip_special_tokens=True)


def pad_token_id(tokenizer: Any) -> int:
    """The id padded positions hold (they are masked): the pad token, else the eos, else 0."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad) if pad is not None else 0


def item_index(item: dict[str, Any], position: int) -> str:
    """The key an item is reported under (its `index`, as text, as the reference framework's JSON has it)."""
    index = item.get("index")
    return str(int(index)) if index is not None else str(position)


@dataclass(frozen=True)
class _Sequence:
    """A distinct sequence to score: its prompt (unlabelled tokens) and its labelled answer."""

    prompt: torch.Tensor
    answer: torch.Tensor
    ends_with_eos: bool


class ScorePool:
    """Per-sequence scores of datasets, computed on first request for every dataset registered by then.

    Sequences that share a prompt (an item's answer, paraphrase and perturbed answers) are scored together:
    the prompt is run once into a KV cache, and every answer continues from it, so an item with seven
    answer variants costs one prompt and seven answers instead of seven prompts and seven answers. Models
    whose forward takes no cache run each sequence whole.
    """

    def __init__(
        self,
        model: Any,
        *,
        eos_token_id: int | None,
        pad_token_id: int,
        batch_size: int,
        world: World | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.model = model
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.batch_size = batch_size
        self.world = world or World.current()
        self.reporter = reporter or Reporter()
        self._pending: dict[int, Any] = {}
        self._keys: dict[int, list[bytes]] = {}
        self._scores: dict[bytes, SequenceScores] = {}
        self.forward_passes = 0
        """Distinct sequences scored so far (a test and the benchmark read it)."""

    def expect(self, dataset: Any) -> None:
        """Score `dataset` together with the others in the first pass that runs."""
        if id(dataset) not in self._keys:
            self._pending[id(dataset)] = dataset

    def scores(self, dataset: Any) -> list[SequenceScores]:
        """The scores of every item of `dataset`, in its order."""
        if id(dataset) not in self._keys:
            self._pending[id(dataset)] = dataset
            self._run()
        return [self._scores[key] for key in self._keys[id(dataset)]]

    def _run(self) -> None:
        todo: dict[bytes, _Sequence] = {}
        for dataset_id, dataset in self._pending.items():
            keys = []
            for item in iter_items(dataset):
                key = _key(item["input_ids"], item["labels"])
                keys.append(key)
                if key not in self._scores and key not in todo:
                    todo[key] = self._split(item["input_ids"], item["labels"])
            self._keys[dataset_id] = keys
        self._pending.clear()
        if not todo:
            return
        batches = _batches(todo, self.batch_size)
        shared = _cache_argument(self.model) is not None
        with self.reporter.task("scoring answers (one forward pass each)", len(todo)) as advance:

            def work(batch: list[bytes]) -> dict[bytes, SequenceScores]:
                sequences = [todo[key] for key in batch]
                done = self._score_shared(sequences) if shared else self._score_whole(sequences)
                advance(len(batch))
                return dict(zip(batch, done, strict=True))

            self._scores.update(self.world.run_shared(batches, work))
        self.forward_passes += len(todo)

    def _split(self, input_ids: torch.Tensor, labels: torch.Tensor) -> _Sequence:
        labelled = (labels != IGNORE_INDEX).nonzero()
        start = int(labelled[0]) if len(labelled) else len(input_ids)
        answer = input_ids[start:].to(torch.long)
        ends = bool(len(answer)) and self.eos_token_id is not None and int(answer[-1]) == self.eos_token_id
        return _Sequence(input_ids[:start].to(torch.long), answer, ends)

    @torch.no_grad()
    def _score_shared(self, sequences: Sequence[_Sequence]) -> list[SequenceScores]:
        """Distinct prompts once, left-padded, into a KV cache; every answer continues from its prompt."""
        from transformers import DynamicCache

        device = _input_device(self.model)
        prompts: dict[bytes, int] = {}
        for sequence in sequences:
            prompts.setdefault(sequence.prompt.numpy().tobytes(), len(prompts))
        unique = list({sequence.prompt.numpy().tobytes(): sequence.prompt for sequence in sequences}.values())
        prompt_ids, prompt_mask = _left_padded(unique, self.pad_token_id)
        cache = DynamicCache(config=self.model.config)
        name = _cache_argument(self.model)
        prompt_logits = self.model(
            input_ids=prompt_ids.to(device),
            attention_mask=prompt_mask.to(device),
            position_ids=(prompt_mask.cumsum(-1) - 1).clamp_min(0).to(device),
            use_cache=True,
            logits_to_keep=1,
            **{name: cache},
        ).logits[:, -1]
        rows = torch.tensor([prompts[s.prompt.numpy().tobytes()] for s in sequences])
        cache.batch_select_indices(rows.to(device))
        answer_ids, answer_mask = _right_padded([s.answer for s in sequences], self.pad_token_id)
        mask = torch.cat([prompt_mask[rows], answer_mask], dim=1)
        positions = prompt_mask[rows].sum(-1, keepdim=True) + torch.arange(answer_ids.shape[1])[None]
        answer_logits = self.model(
            input_ids=answer_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=True,
            **{name: cache},
        ).logits
        # answer token j is predicted by the prompt's last position (j = 0) or by answer position j - 1
        predicting = torch.cat([prompt_logits[rows.to(device)][:, None], answer_logits[:, :-1]], dim=1)
        del answer_logits, cache
        valid = answer_mask.bool().to(predicting.device)
        log_probs, zscores, hits = _token_statistics(
            predicting[valid], answer_ids.to(predicting.device)[valid]
        )
        return self._unpack(sequences, [len(s.answer) for s in sequences], log_probs, zscores, hits)

    @torch.no_grad()
    def _score_whole(self, sequences: Sequence[_Sequence]) -> list[SequenceScores]:
        """Each sequence in one right-padded forward pass (models without a KV cache argument)."""
        device = _input_device(self.model)
        whole = [torch.cat([s.prompt, s.answer]) for s in sequences]
        input_ids, attention = _right_padded(whole, self.pad_token_id)
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        for row, s in enumerate(sequences):
            labels[row, len(s.prompt) : len(s.prompt) + len(s.answer)] = s.answer
        logits = self.model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
        targets = labels[:, 1:].to(logits.device)
        mask = targets != IGNORE_INDEX
        log_probs, zscores, hits = _token_statistics(logits[:, :-1][mask], targets[mask])
        return self._unpack(sequences, mask.sum(dim=1).tolist(), log_probs, zscores, hits)

    @staticmethod
    def _unpack(
        sequences: Sequence[_Sequence],
        counts: Sequence[int],
        log_probs: np.ndarray,
        zscores: np.ndarray,
        hits: np.ndarray,
    ) -> list[SequenceScores]:
        out, start = [], 0
        for count, sequence in zip(counts, sequences, strict=True):
            end = start + count
            out.append(
                SequenceScores(
                    log_probs[start:end], zscores[start:end], hits[start:end], sequence.ends_with_eos
                )
            )
            start = end
        return out


def _batches(todo: dict[bytes, _Sequence], batch_size: int) -> list[list[bytes]]:
    """Sequences grouped by prompt, groups sorted longest first (a batch too big for memory fails at once),
    packed into batches of at most `batch_size` sequences; the same batches whatever the number of ranks."""
    groups: dict[bytes, list[bytes]] = {}
    for key, sequence in todo.items():
        groups.setdefault(sequence.prompt.numpy().tobytes(), []).append(key)

    def length(keys: list[bytes]) -> int:
        return len(todo[keys[0]].prompt) + max(len(todo[k].answer) for k in keys)

    batches: list[list[bytes]] = []
    current: list[bytes] = []
    for keys in sorted(groups.values(), key=lambda keys: -length(keys)):
        for key in keys:
            if len(current) == batch_size:
                batches.append(current)
                current = []
            current.append(key)
    if current:
        batches.append(current)
    return batches


def _left_padded(rows: Sequence[torch.Tensor], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(row) for row in rows)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, length - len(row) :] = row
        mask[i, length - len(row) :] = 1
    return ids, mask


def _right_padded(rows: Sequence[torch.Tensor], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(row) for row in rows)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def _cache_argument(model: Any) -> str | None:
    """The name under which the model's forward takes a KV cache ("cache" since transformers 5.24)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        parameters = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return None
    for name in ("cache", "past_key_values"):
        if name in parameters:
            return name
    return None


def _token_statistics(rows: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log p(target), its min-k%++ standardisation and greedy hits, for (tokens, vocabulary) logits.

    Rows go through in chunks of about 64 M logits, so a 128k vocabulary does not need the whole batch's
    float32 log-softmax at once.
    """
    chunk = max(1, (1 << 26) // max(1, rows.shape[-1]))
    log_probs, zscores, hits = [], [], []
    for begin in range(0, rows.shape[0], chunk):
        part = rows[begin : begin + chunk].float()
        wanted = targets[begin : begin + chunk]
        logp = torch.log_softmax(part, dim=-1)
        token = logp.gather(1, wanted[:, None]).squeeze(1)
        log_probs.append(token.double().cpu().numpy())
        zscores.append(standardised_log_prob(logp, token).double().cpu().numpy())
        hits.append((part.argmax(dim=-1) == wanted).cpu().numpy())
    if not log_probs:
        return np.zeros(0), np.zeros(0), np.zeros(0, bool)
    return np.concatenate(log_probs), np.concatenate(zscores), np.concatenate(hits)


def _input_device(model: Any) -> torch.device:
    """Where the model's inputs go: its (first) parameter's device, also for a model split over devices."""
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    return next(model.parameters()).device
