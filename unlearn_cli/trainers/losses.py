"""Tensor building blocks shared by the unlearning losses: per-token and per-sequence answer log-likelihoods.

Everything here is a pure function of tensors. `logits[:, t]` predicts `labels[:, t + 1]` (causal LM), and
positions labelled -100 (prompt, padding) never count. Losses that are sums are divided by a denominator
the caller passes (`num_tokens`, `num_sequences`): the trainer passes the count over the whole optimizer
step (every micro-batch of gradient accumulation, every rank), so that a step's update does not depend on
how its batch was split; left out, the batch's own count is used (a plain mean).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unlearn_cli.data.template import IGNORE_INDEX


def shifted(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Next-token logits [B, T-1, V] (float32), their labels [B, T-1] and the mask of labelled positions."""
    next_logits = logits[:, :-1, :].float()
    next_labels = labels[:, 1:]
    return next_logits, next_labels, next_labels != IGNORE_INDEX


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative log-likelihood of each next token [B, T-1] (0 where unlabelled) and the label mask."""
    next_logits, next_labels, mask = shifted(logits, labels)
    nll = F.cross_entropy(
        next_logits.transpose(1, 2), next_labels, ignore_index=IGNORE_INDEX, reduction="none"
    )
    return nll, mask


def sequence_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of each sequence's labelled tokens, log π(y|x) [B]."""
    nll, _ = token_nll(logits, labels)
    return -nll.sum(dim=1)


def labelled_tokens(labels: torch.Tensor) -> torch.Tensor:
    """How many next-token positions of each sequence carry a label [B]."""
    return (labels[:, 1:] != IGNORE_INDEX).sum(dim=1)


def denominator(value: torch.Tensor | int | float | None, fallback: torch.Tensor | int) -> torch.Tensor:
    """The given count as a float tensor, or `fallback` (the batch's own count); never below 1."""
    count = fallback if value is None else value
    return torch.as_tensor(count, dtype=torch.float32).clamp(min=1)


def token_mean(
    per_token: torch.Tensor, mask: torch.Tensor, num_tokens: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Σ of a per-token loss (0 where unlabelled) / num_tokens (default: the labelled positions in `mask`)."""
    return per_token.sum() / denominator(num_tokens, mask.sum()).to(per_token.device)


def nll_loss(
    logits: torch.Tensor, labels: torch.Tensor, num_tokens: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Σ token NLL / num_tokens: the fine-tuning loss (descended on retain data, ascended on forget data)."""
    return token_mean(*token_nll(logits, labels), num_tokens)


def token_kl(
    logits: torch.Tensor, reference_logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(π_ref(·|prefix) ‖ π(·|prefix)) at each next-token position [B, T-1] (0 where unlabelled) and the
    label mask."""
    next_logits, _, mask = shifted(logits, labels)
    next_reference = reference_logits[:, :-1, :].float()
    log_p = F.log_softmax(next_logits, dim=-1)
    log_q = F.log_softmax(next_reference, dim=-1)
    return (log_q.exp() * (log_q - log_p)).sum(dim=-1) * mask, mask


def kl_to_reference(
    logits: torch.Tensor,
    reference_logits: torch.Tensor,
    labels: torch.Tensor,
    num_tokens: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Σ over labelled positions of KL(π_ref(·|prefix) ‖ π(·|prefix)) / num_tokens."""
    return token_mean(*token_kl(logits, reference_logits, labels), num_tokens)
