"""The numbers behind the metrics: small pure functions of arrays, each checked in the tests by hand.

Conventions follow the TOFU and MUSE papers and the reference framework (open-unlearning), so results and
its published logs are interchangeable; where the reference framework's code departs from the definition,
the definition wins and the function says so.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import torch

MIN_K_FRACTION = 0.4


def probability_from_nll(mean_nll: float) -> float:
    """Length-normalised probability of an answer: exp(-mean token NLL)."""
    return math.exp(-mean_nll)


def truth_ratio(true_nll: float, perturbed_nlls: Sequence[float]) -> float:
    """R = exp(-mean NLL of the perturbed answers) / exp(-NLL of the true (or paraphrased) answer).

    Computed in log space (exp(true - mean(perturbed))) so that it never divides by an underflowed zero.
    """
    return math.exp(true_nll - float(np.mean(perturbed_nlls)))


def truth_ratio_closer_to_one(ratios: Sequence[float]) -> float:
    """Forget data (TOFU `forget_truth_ratio`): mean of min(R, 1/R); 1 when both are equally likely."""
    r = np.asarray(ratios, dtype=np.float64)
    return float(np.mean(np.minimum(r, 1.0 / r)))


def truth_ratio_true_better(ratios: Sequence[float]) -> float:
    """Data to keep (TOFU `retain_/ra_/wf_Truth_Ratio`): mean of max(0, 1 - R); high when truth wins."""
    r = np.asarray(ratios, dtype=np.float64)
    return float(np.mean(np.maximum(0.0, 1.0 - r)))


def normalised_probability(true_probability: float, perturbed_probabilities: Sequence[float]) -> float:
    """P(true) / (P(true) + sum P(perturbed)): the true answer's share among all options."""
    return true_probability / (true_probability + float(np.sum(perturbed_probabilities)))


def ks_pvalue(sample: Sequence[float], reference: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (TOFU's forget quality when applied to truth ratios)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(np.asarray(sample, float), np.asarray(reference, float)).pvalue)


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean of non-negative values; 0 as soon as one of them is 0 (TOFU's model utility)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("the harmonic mean of nothing is undefined")
    if np.any(array < 0):
        raise ValueError(f"the harmonic mean needs non-negative values, got {array.tolist()}")
    if np.any(array == 0):
        return 0.0
    return float(array.size / np.sum(1.0 / array))


def roc_auc(negative_scores: Sequence[float], positive_scores: Sequence[float]) -> float:
    """Area under the ROC curve of telling positives from negatives by score (ties count one half).

    Equal to the Mann-Whitney U statistic over n_pos * n_neg, computed from average ranks.
    """
    from scipy.stats import rankdata

    negatives = np.asarray(negative_scores, dtype=np.float64)
    positives = np.asarray(positive_scores, dtype=np.float64)
    if negatives.size == 0 or positives.size == 0:
        raise ValueError("an AUC needs at least one score of each class")
    ranks = rankdata(np.concatenate([negatives, positives]))
    positive_rank_sum = float(np.sum(ranks[negatives.size :]))
    n_pos, n_neg = positives.size, negatives.size
    return (positive_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def mia_auc(forget_scores: Sequence[float], holdout_scores: Sequence[float]) -> float:
    """Membership-inference AUC with the reference framework's convention.

    Scores are signed like a loss (higher = less likely a member), holdout items are the positives: the AUC
    is 1 when every forget item looks more like training data than every holdout item, 0.5 at chance.
    """
    return roc_auc(forget_scores, holdout_scores)


def privleak(auc: float, reference_auc: float) -> float:
    """MUSE's PrivLeak in percent: the relative gap of the AUC to the retain model's.

    MUSE reports AUCs as 1 - x of the convention above, so the gap is ((1-auc) - (1-ref)) / (1-ref) * 100:
    about 0 for a model that leaks like one never trained on the forget set, -100 for one that memorised it.
    """
    return ((1.0 - auc) - (1.0 - reference_auc)) / (1.0 - reference_auc) * 100.0


def relative_difference(value: float, reference: float) -> float:
    """(value - reference) / reference * 100."""
    return (value - reference) / reference * 100.0


def min_k_score(token_log_probs: Sequence[float], k: float = MIN_K_FRACTION) -> float:
    """Min-k% Prob (Shi et al., 2024): minus the mean of the lowest k fraction (at least one) of the token
    log-probabilities; higher = less likely a member."""
    values = np.sort(np.asarray(token_log_probs, dtype=np.float64))
    if values.size == 0:
        raise ValueError("min-k needs at least one token")
    count = max(1, int(values.size * k))
    return float(-np.mean(values[:count]))


def min_k_plus_plus_score(token_zscores: Sequence[float], k: float = MIN_K_FRACTION) -> float:
    """Min-k%++ (Zhang et al., 2024): min-k over each token's log-probability standardised by the mean and
    standard deviation of log p under the model's own next-token distribution."""
    return min_k_score(token_zscores, k)


def standardised_log_prob(log_probs: torch.Tensor, token_log_prob: torch.Tensor) -> torch.Tensor:
    """(log p(token) - mu) / sigma with mu = E_p[log p], sigma^2 = E_p[(log p)^2] - mu^2 over the vocabulary
    (rows of `log_probs`); sigma^2 is floored at 1e-6 as in the reference framework."""
    probs = log_probs.exp()
    mu = (probs * log_probs).sum(dim=-1)
    variance = (probs * log_probs.square()).sum(dim=-1) - mu.square()
    return (token_log_prob - mu) / variance.clamp_min(1e-6).sqrt()


def zlib_score(mean_nll: float, text: str) -> float:
    """zlib-normalised loss (Carlini et al., 2021): mean NLL over the zlib-compressed size of the text."""
    return mean_nll / len(zlib.compress(text.encode("utf-8")))


def exact_memorization(greedy_hits: Sequence[bool]) -> float:
    """Fraction of answer tokens that are the model's greedy (argmax) prediction given the true prefix."""
    hits = np.asarray(greedy_hits, dtype=bool)
    if hits.size == 0:
        raise ValueError("exact memorisation needs at least one token")
    return float(np.mean(hits))


def extraction_strength(greedy_hits: Sequence[bool]) -> float:
    """Extraction strength (Carlini et al., 2021): 1 - k/n for the smallest k such that the model's greedy
    predictions reproduce answer tokens k..n-1 given the true prefix; 0 when not even the last token is.

    The reference framework reports 1/n when no suffix is reproduced (its search stops at k = n-1); the
    empty suffix at k = n is the one that is always "reproduced", so the definition gives 0.
    """
    hits = np.asarray(greedy_hits, dtype=bool)
    n = hits.size
    if n == 0:
        raise ValueError("extraction strength needs at least one token")
    misses = np.flatnonzero(~hits)
    first_reproduced = 0 if misses.size == 0 else int(misses[-1]) + 1
    return 1.0 - first_reproduced / n
