"""The numbers behind every metric, on small inputs whose results are worked out by hand (as literals)."""

from __future__ import annotations

import math

import pytest
import torch

from unlearn_cli.evals import stats


def test_probability_is_exp_of_minus_the_mean_nll() -> None:
    assert stats.probability_from_nll(math.log(2.0)) == pytest.approx(0.5)
    assert stats.probability_from_nll(0.0) == 1.0


def test_truth_ratio_uses_the_mean_nll_of_the_perturbed_answers() -> None:
    # exp(-mean(2, 4)) / exp(-1) = exp(1 - 3) = e^-2
    assert stats.truth_ratio(1.0, [2.0, 4.0]) == pytest.approx(0.1353352832366127)
    # an equally likely wrong answer gives 1
    assert stats.truth_ratio(3.0, [3.0]) == pytest.approx(1.0)


def test_truth_ratio_stays_finite_where_probabilities_underflow() -> None:
    # exp(-800) is 0.0 in float64, so a ratio of probabilities would divide zero by zero
    assert stats.truth_ratio(800.0, [801.0]) == pytest.approx(math.exp(-1.0))


def test_forget_aggregation_is_mean_of_min_r_and_its_inverse() -> None:
    # min(0.5, 2) = 0.5; min(2, 0.5) = 0.5; min(1, 1) = 1 -> mean 2/3
    assert stats.truth_ratio_closer_to_one([0.5, 2.0, 1.0]) == pytest.approx(2 / 3)


def test_retain_aggregation_is_mean_of_one_minus_r_floored_at_zero() -> None:
    # 1 - 0.25 = 0.75; 1 - 1.5 < 0 -> 0; 1 - 0.5 = 0.5 -> mean 1.25 / 3
    assert stats.truth_ratio_true_better([0.25, 1.5, 0.5]) == pytest.approx(0.4166666666666667)


def test_normalised_probability_is_the_true_share_of_all_options() -> None:
    assert stats.normalised_probability(0.6, [0.1, 0.2, 0.1]) == pytest.approx(0.6)
    assert stats.normalised_probability(0.2, [0.2, 0.2, 0.2]) == pytest.approx(0.25)


def test_ks_pvalue_matches_scipy_and_the_exact_value() -> None:
    from scipy.stats import ks_2samp

    sample, reference = [0.1, 0.5, 0.9, 0.95], [0.2, 0.3]
    assert stats.ks_pvalue(sample, reference) == ks_2samp(sample, reference).pvalue
    # disjoint samples of 3 and 3: D = 1, exact two-sided p = 2 / C(6, 3) = 0.1
    assert stats.ks_pvalue([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.1)


def test_harmonic_mean_and_a_zero_component() -> None:
    assert stats.harmonic_mean([1.0, 2.0, 4.0]) == pytest.approx(3 / 1.75)
    assert stats.harmonic_mean([0.9, 0.0, 0.5]) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        stats.harmonic_mean([0.5, -0.1])


def test_roc_auc_counts_pairs_and_half_counts_ties() -> None:
    # positives above negatives in 3 of 4 pairs
    assert stats.roc_auc([0.1, 0.4], [0.35, 0.8]) == pytest.approx(0.75)
    # (2 vs 1) 1, (2 vs 2) 1/2, (3 vs 1) 1, (3 vs 2) 1 -> 3.5 / 4
    assert stats.roc_auc([1.0, 2.0], [2.0, 3.0]) == pytest.approx(0.875)
    assert stats.roc_auc([5.0], [5.0]) == pytest.approx(0.5)


def test_mia_auc_is_one_when_every_forget_item_looks_like_training_data() -> None:
    # scores are loss-like: forget (members) low, holdout high
    assert stats.mia_auc([0.1, 0.2], [0.3, 0.4]) == pytest.approx(1.0)
    assert stats.mia_auc([0.3, 0.4], [0.1, 0.2]) == pytest.approx(0.0)


def test_privleak_is_the_relative_gap_of_one_minus_auc() -> None:
    # ((1 - 0.8) - (1 - 0.6)) / (1 - 0.6) * 100 = (0.2 - 0.4) / 0.4 * 100
    assert stats.privleak(0.8, 0.6) == pytest.approx(-50.0)
    assert stats.privleak(0.5, 0.5) == pytest.approx(0.0)
    assert stats.privleak(1.0, 0.5) == pytest.approx(-100.0)
    assert stats.relative_difference(0.75, 0.5) == pytest.approx(50.0)


def test_min_k_takes_the_lowest_fraction_and_at_least_one_token() -> None:
    log_probs = [-1.0, -2.0, -3.0, -4.0, -5.0]
    assert stats.min_k_score(log_probs, 0.4) == pytest.approx(4.5)  # -mean(-5, -4)
    assert stats.min_k_score(log_probs, 0.1) == pytest.approx(5.0)  # int(0.5) = 0 -> one token
    assert stats.min_k_plus_plus_score([1.0, -1.0, 0.5], 0.4) == pytest.approx(1.0)


def test_min_k_plus_plus_standardises_over_the_next_token_distribution() -> None:
    # p = (1/2, 1/4, 1/4): log p is -ln 2 or -2 ln 2 with probability 1/2 each,
    # so mu = -1.5 ln 2 and sigma = 0.5 ln 2; the tokens sit one sigma above and below
    log_p = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]], dtype=torch.float64))
    token = torch.stack([log_p[0, 0], log_p[1, 1]])
    z = stats.standardised_log_prob(log_p, token)
    assert z.tolist() == pytest.approx([1.0, -1.0])


def test_zlib_score_divides_by_the_compressed_size() -> None:
    # zlib output: 2-byte header, the deflate block, 4-byte Adler-32: 9 bytes for "a", 13 for "Paris"
    assert stats.zlib_score(1.8, "a") == pytest.approx(0.2)
    assert stats.zlib_score(2.6, "Paris") == pytest.approx(0.2)


def test_exact_memorization_is_the_fraction_of_greedy_hits() -> None:
    assert stats.exact_memorization([True, True, False, True]) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("hits", "expected"),
    [
        ([True, True, True, True], 1.0),  # the whole answer: k = 0
        ([False, True, True, True], 0.75),  # tokens 1..3: k = 1
        ([True, False, True, True], 0.5),  # tokens 2..3: k = 2
        ([True, True, True, False], 0.0),  # not even the last token; the reference framework says 1/4
    ],
)
def test_extraction_strength_is_one_minus_where_the_reproduced_suffix_starts(
    hits: list[bool], expected: float
) -> None:
    assert stats.extraction_strength(hits) == pytest.approx(expected)
