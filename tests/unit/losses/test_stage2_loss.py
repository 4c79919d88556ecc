"""Stage-2 loss (paper eqs. 3-7): each term against hand arithmetic, the fallback, presets,
gradients, input validation and the batched helper.

The hand case used throughout: scores s = [2.0, 0.5, -1.0], one positive (the first), teacher
p_yes = [0.9, missing, 0.2]. Hand values are written with ``math`` on purpose (no torch), so a
bug in the loss cannot hide in the expected value. float64 tensors keep the comparisons tight.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from rankvideo.losses import (
    Stage2LossConfig,
    distill_loss,
    pairwise_loss,
    pointwise_loss,
    stage2_loss,
    stage2_loss_batch,
)
from rankvideo.losses.stage2 import PRESETS

S = [2.0, 0.5, -1.0]
Y = [1.0, 0.0, 0.0]
T = [0.9, -1.0, 0.2]
PAPER = dict(pairwise=1.0, distill=5.0, pointwise=0.5, tau_pair=10.0, tau_distill=5.0,
             tau_point=1.0, neg_target=0.1, neg_weight=0.5)


def t64(values, requires_grad=False):
    return torch.tensor(values, dtype=torch.float64, requires_grad=requires_grad)


def softplus(x):
    return math.log1p(math.exp(x))


def bce(x, target):
    """BCE-with-logits by hand: -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x)))."""
    return target * softplus(-x) + (1.0 - target) * softplus(x)


# Hand values of the three terms on the hand case with the paper's temperatures.
HAND_PAIR = -math.log(math.exp(0.2) / (math.exp(0.2) + math.exp(0.05) + math.exp(-0.1)))
HAND_DISTILL = (bce(2.0 / 5, 0.9) + bce(-1.0 / 5, 0.2)) / 2  # the middle pair has no teacher
HAND_POINT = (1.0 * bce(2.0, 1.0) + 0.5 * bce(0.5, 0.1) + 0.5 * bce(-1.0, 0.1)) / 3


# ----------------------------------------------------------------------------- pairwise term
def test_pairwise_hand_case_tau10():
    got = pairwise_loss(t64(S), t64(Y), tau=10.0)
    expected = -math.log(math.exp(0.2) / (math.exp(0.2) + math.exp(0.05) + math.exp(-0.1)))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    assert got.item() == pytest.approx(0.9560982716982015, rel=1e-12)


def test_pairwise_temperature_sharpens_and_flattens():
    tau1 = pairwise_loss(t64(S), t64(Y), tau=1.0).item()
    assert tau1 == pytest.approx(-math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.5) + math.exp(-1.0))),
                                 rel=1e-12)
    tau10 = pairwise_loss(t64(S), t64(Y), tau=10.0).item()
    tau1000 = pairwise_loss(t64(S), t64(Y), tau=1000.0).item()
    # The positive already leads: a sharper softmax (small tau) gives a smaller loss; as tau
    # grows the softmax tends to uniform and the loss to log(n).
    assert tau1 < tau10 < tau1000 < math.log(3)
    assert tau1000 == pytest.approx(math.log(3), abs=2e-3)


def test_pairwise_several_positives_are_averaged_over_the_whole_group():
    s, y = t64([2.0, 1.0, -1.0]), t64([1.0, 1.0, 0.0])
    z = math.exp(2.0) + math.exp(1.0) + math.exp(-1.0)  # other positives stay in the denominator
    expected = (-math.log(math.exp(2.0) / z) - math.log(math.exp(1.0) / z)) / 2
    assert pairwise_loss(s, y, tau=1.0).item() == pytest.approx(expected, rel=1e-12)
    # Same through stage2_loss.
    assert stage2_loss(s, y, t64([-1.0] * 3), **{**PAPER, "tau_pair": 1.0})["pairwise"].item() == \
        pytest.approx(expected, rel=1e-12)


def test_pairwise_is_shift_invariant():
    base = pairwise_loss(t64(S), t64(Y), tau=10.0)
    shifted = pairwise_loss(t64(S) + 7.0, t64(Y), tau=10.0)
    assert shifted.item() == pytest.approx(base.item(), rel=1e-12)


@pytest.mark.parametrize("labels", [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
def test_pairwise_alone_rejects_single_class_groups(labels):
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        pairwise_loss(t64(S), t64(labels), tau=10.0)


# ------------------------------------------------------------------------------ distill term
def test_distill_hand_case_masks_missing_teacher():
    got = distill_loss(t64(S), t64(T), tau=5.0).item()
    expected = (-(0.9 * math.log(1 / (1 + math.exp(-0.4))) + 0.1 * math.log(1 - 1 / (1 + math.exp(-0.4))))
                - (0.2 * math.log(1 / (1 + math.exp(0.2))) + 0.8 * math.log(1 - 1 / (1 + math.exp(0.2))))) / 2
    assert got == pytest.approx(expected, rel=1e-12)
    assert got == pytest.approx(HAND_DISTILL, rel=1e-12)
    assert got == pytest.approx(0.5955770608907722, rel=1e-12)


def test_distill_missing_pairs_neither_count_nor_get_gradient():
    s = t64(S, requires_grad=True)
    loss = distill_loss(s, t64(T), tau=5.0)
    (grad,) = torch.autograd.grad(loss, s)
    assert grad[1].item() == 0.0
    assert grad[0].item() != 0.0 and grad[2].item() != 0.0
    # Moving the unlabelled pair's score changes nothing.
    assert distill_loss(t64([2.0, 40.0, -1.0]), t64(T), tau=5.0).item() == pytest.approx(loss.item(), rel=1e-15)
    # Any negative value means "missing", not just -1.
    assert distill_loss(t64(S), t64([0.9, -0.5, 0.2]), tau=5.0).item() == pytest.approx(loss.item(), rel=1e-15)


def test_distill_temperature():
    got = distill_loss(t64(S), t64(T), tau=1.0).item()
    assert got == pytest.approx((bce(2.0, 0.9) + bce(-1.0, 0.2)) / 2, rel=1e-12)
    assert got != pytest.approx(HAND_DISTILL)


def test_distill_teacher_bounds_0_and_1_are_valid_labels():
    got = distill_loss(t64(S), t64([1.0, 0.0, -1.0]), tau=5.0).item()
    assert got == pytest.approx((bce(0.4, 1.0) + bce(0.1, 0.0)) / 2, rel=1e-12)


def test_distill_all_missing_is_exact_zero_total_unaffected_and_backward_works():
    s = t64(S, requires_grad=True)
    none = t64([-1.0, -1.0, -1.0])
    out = stage2_loss(s, t64(Y), none, **PAPER)
    assert out["distill"].item() == 0.0
    assert not math.copysign(1.0, out["distill"].item()) < 0  # +0.0, not -0.0
    assert out["distill"].requires_grad  # still on the graph
    (g_distill,) = torch.autograd.grad(out["distill"], s, retain_graph=True)
    assert torch.equal(g_distill, torch.zeros_like(s))
    assert out["total"].item() == pytest.approx(HAND_PAIR + 0.5 * HAND_POINT, rel=1e-12)
    out["total"].backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    # With no labelled pair, distill_loss alone also returns a graph-connected 0.
    alone = distill_loss(t64(S, requires_grad=True), none, tau=5.0)
    assert alone.item() == 0.0 and alone.requires_grad
    alone.backward()


# ---------------------------------------------------------------------------- pointwise term
def test_pointwise_is_sum_w_l_over_n_like_torch_weight():
    s, y = t64(S), t64(Y)
    got = pointwise_loss(s, y, tau=1.0, neg_target=0.1, neg_weight=0.5)
    ref = F.binary_cross_entropy_with_logits(s, t64([1.0, 0.1, 0.1]), weight=t64([1.0, 0.5, 0.5]))
    assert got.item() == pytest.approx(ref.item(), rel=1e-15)
    # The literal: sum(w_i * l_i) / n with n = 3, NOT / sum(w) = 2.
    per_pair = [bce(2.0, 1.0), bce(0.5, 0.1), bce(-1.0, 0.1)]
    weights = [1.0, 0.5, 0.5]
    assert got.item() == pytest.approx(sum(w * l for w, l in zip(weights, per_pair)) / 3, rel=1e-12)
    assert got.item() == pytest.approx(0.2651991156307124, rel=1e-12)
    assert got.item() != pytest.approx(sum(w * l for w, l in zip(weights, per_pair)) / sum(weights))


def test_pointwise_temperature_target_and_weight_are_arguments():
    got = pointwise_loss(t64(S), t64(Y), tau=2.0, neg_target=0.0, neg_weight=1.0).item()
    assert got == pytest.approx((bce(1.0, 1.0) + bce(0.25, 0.0) + bce(-0.5, 0.0)) / 3, rel=1e-12)


# -------------------------------------------------------------------------------- the total
def test_paper_preset_total_pinned():
    out = stage2_loss(t64(S), t64(Y), t64(T), **PAPER)
    assert out["pairwise"].item() == pytest.approx(HAND_PAIR, rel=1e-12)
    assert out["distill"].item() == pytest.approx(HAND_DISTILL, rel=1e-12)
    assert out["pointwise"].item() == pytest.approx(HAND_POINT, rel=1e-12)
    assert out["total"].item() == pytest.approx(HAND_PAIR + 5.0 * HAND_DISTILL + 0.5 * HAND_POINT, rel=1e-12)
    assert out["total"].item() == pytest.approx(4.066583133967419, rel=1e-12)
    assert set(out) == {"total", "pairwise", "distill", "pointwise"}


def test_total_is_exactly_the_weighted_sum():
    kw = {**PAPER, "pairwise": 0.3, "distill": 2.0, "pointwise": 0.7}
    out = stage2_loss(t64(S), t64(Y), t64(T), **kw)
    assert torch.equal(out["total"], 0.3 * out["pairwise"] + 2.0 * out["distill"] + 0.7 * out["pointwise"])
    # A zero weight switches its term off in the total but it is still reported.
    off = stage2_loss(t64(S), t64(Y), t64(T), **{**PAPER, "distill": 0.0, "pointwise": 0.0})
    assert torch.equal(off["total"], off["pairwise"])
    assert off["distill"].item() == pytest.approx(HAND_DISTILL, rel=1e-12)


@pytest.mark.parametrize("labels", [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], ids=["all_positive", "all_negative"])
def test_single_class_group_falls_back_to_plain_bce(labels):
    s = t64(S, requires_grad=True)
    y = t64(labels)
    out = stage2_loss(s, y, t64(T), **PAPER)
    # total: plain BCE-with-logits on the raw scores, mean, no temperature (official fallback).
    assert torch.equal(out["total"], F.binary_cross_entropy_with_logits(s, y))
    hand = sum(bce(x, labels[0]) for x in S) / 3
    assert out["total"].item() == pytest.approx(hand, rel=1e-12)
    if labels[0] == 1.0:
        assert out["total"].item() == pytest.approx(0.6380888942471007, rel=1e-12)
    # Documented choice: pairwise is an exact 0; distill and pointwise are reported as usual
    # but are not part of the total.
    assert out["pairwise"].item() == 0.0 and out["pairwise"].requires_grad
    assert out["distill"].item() == pytest.approx(distill_loss(s, t64(T), tau=5.0).item(), rel=1e-15)
    assert out["pointwise"].item() == pytest.approx(
        pointwise_loss(s, y, tau=1.0, neg_target=0.1, neg_weight=0.5).item(), rel=1e-15)
    assert out["total"].item() != pytest.approx(5.0 * out["distill"].item() + 0.5 * out["pointwise"].item())
    out["total"].backward()
    assert torch.isfinite(s.grad).all()


def test_one_pair_group_falls_back():
    out = stage2_loss(t64([0.3]), t64([1.0]), t64([0.7]), **PAPER)
    assert out["total"].item() == pytest.approx(bce(0.3, 1.0), rel=1e-12)


def test_paper_and_official_code_presets_differ_only_in_pointwise_weight():
    paper, official = Stage2LossConfig.paper(), Stage2LossConfig.official_code()
    assert paper == Stage2LossConfig() == PRESETS["paper"]
    assert official == PRESETS["official_code"]
    a, b = dataclasses.asdict(paper), dataclasses.asdict(official)
    assert {k for k in a if a[k] != b[k]} == {"pointwise"}
    assert (a["pointwise"], b["pointwise"]) == (0.5, 1.0)
    assert a == PAPER
    out_p, out_o = paper(t64(S), t64(Y), t64(T)), official(t64(S), t64(Y), t64(T))
    for key in ("pairwise", "distill", "pointwise"):
        assert torch.equal(out_p[key], out_o[key])
    assert (out_o["total"] - out_p["total"]).item() == pytest.approx(0.5 * HAND_POINT, rel=1e-12)
    assert out_o["total"].item() == pytest.approx(4.199182691782775, rel=1e-12)


# -------------------------------------------------------------------------------- gradients
def test_gradients_raise_the_positive_and_lower_the_negatives():
    s = torch.tensor(S, requires_grad=True)  # float32, as in training
    out = Stage2LossConfig()(s, torch.tensor(Y), torch.tensor(T))
    assert out["total"].dtype == torch.float32
    out["total"].backward()
    assert s.grad[0] < 0  # gradient descent raises the positive's score
    assert (s.grad[1:] > 0).all()  # and lowers both negatives'
    # The pairwise term alone moves scores against each other only (softmax gradient sums to 0).
    s2 = t64(S, requires_grad=True)
    pairwise_loss(s2, t64(Y), tau=10.0).backward()
    assert s2.grad[0] < 0 and s2.grad.sum().item() == pytest.approx(0.0, abs=1e-15)


def test_labels_may_be_bool_or_int():
    ref = stage2_loss(t64(S), t64(Y), t64(T), **PAPER)["total"]
    for labels in (torch.tensor([True, False, False]), torch.tensor([1, 0, 0])):
        assert stage2_loss(t64(S), labels, t64(T), **PAPER)["total"].item() == pytest.approx(ref.item(), rel=1e-15)


# ------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "scores, labels, teacher, overrides, match",
    [
        ([[2.0, 0.5]], [[1.0, 0.0]], [[0.9, 0.1]], {}, "must be 1-D"),
        (2.0, 1.0, 0.5, {}, "must be 1-D"),
        ([2.0, 0.5, -1.0], [1.0, 0.0], [0.9, 0.1, 0.2], {}, "equal length"),
        ([2.0, 0.5], [1.0, 0.0], [0.9, 0.1, 0.2], {}, "equal length"),
        ([], [], [], {}, "empty query group"),
        ([2.0, float("nan")], [1.0, 0.0], [0.9, 0.1], {}, r"non-finite scores at positions \[1\]"),
        ([float("inf"), 0.5], [1.0, 0.0], [0.9, 0.1], {}, "non-finite scores"),
        ([2.0, 0.5], [2.0, 0.0], [0.9, 0.1], {}, "labels must be 0 or 1"),
        ([2.0, 0.5], [1.0, 0.5], [0.9, 0.1], {}, "labels must be 0 or 1"),
        ([2.0, 0.5], [1.0, 0.0], [1.5, 0.1], {}, "<= 1"),
        ([2.0, 0.5], [1.0, 0.0], [float("nan"), 0.1], {}, "NaN"),
        ([2.0, 0.5], [1.0, 0.0], [0.9, 0.1], {"tau_pair": 0.0}, "tau_pair must be"),
        ([2.0, 0.5], [1.0, 0.0], [0.9, 0.1], {"tau_distill": -1.0}, "tau_distill must be"),
        ([2.0, 0.5], [1.0, 0.0], [0.9, 0.1], {"tau_point": float("nan")}, "tau_point must be"),
        ([2.0, 0.5], [1.0, 0.0], [0.9, 0.1], {"distill": -5.0}, "weight distill must be"),
        ([2.0, 0.5], [1.0, 0.0], [0.9, 0.1], {"neg_target": 1.5}, r"neg_target must lie in \[0, 1\]"),
        ([2.0, 0.5], [1.0, 0.0], [0.9, 0.1], {"neg_weight": -0.5}, "weight neg_weight must be"),
    ],
)
def test_input_validation(scores, labels, teacher, overrides, match):
    with pytest.raises(ValueError, match=match):
        stage2_loss(t64(scores), t64(labels), t64(teacher), **{**PAPER, **overrides})


def test_integer_scores_are_rejected():
    with pytest.raises(ValueError, match="floating-point"):
        stage2_loss(torch.tensor([2, 0]), torch.tensor([1, 0]), t64([0.9, 0.1]), **PAPER)


def test_every_hyper_parameter_is_required():
    kw = dict(PAPER)
    kw.pop("neg_weight")
    with pytest.raises(TypeError, match="neg_weight"):
        stage2_loss(t64(S), t64(Y), t64(T), **kw)


# ------------------------------------------------------------------------------------ config
def test_config_call_forwards_to_stage2_loss():
    cfg = Stage2LossConfig(tau_pair=3.0, distill=1.5)
    got = cfg(t64(S), t64(Y), t64(T))
    ref = stage2_loss(t64(S), t64(Y), t64(T), **{**PAPER, "tau_pair": 3.0, "distill": 1.5})
    for key in ref:
        assert torch.equal(got[key], ref[key])


def test_config_from_mapping_accepts_known_keys_and_omegaconf():
    cfg = Stage2LossConfig.from_mapping({"pointwise": 1, "tau_pair": 5.0})
    assert cfg == Stage2LossConfig(pointwise=1.0, tau_pair=5.0)
    assert isinstance(cfg.pointwise, float)
    node = OmegaConf.create({"distill": 2.0, "neg_target": 0.2})
    assert Stage2LossConfig.from_mapping(node) == Stage2LossConfig(distill=2.0, neg_target=0.2)
    assert Stage2LossConfig.from_mapping({}) == Stage2LossConfig()


def test_config_from_mapping_names_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lambda_point', 'tau_pairs'\]"):
        Stage2LossConfig.from_mapping({"tau_pairs": 5.0, "pointwise": 1.0, "lambda_point": 1.0})


def test_config_rejects_bad_values_when_built():
    with pytest.raises(ValueError, match="tau_point must be"):
        Stage2LossConfig(tau_point=0.0)
    with pytest.raises(ValueError, match="must be a number"):
        Stage2LossConfig.from_mapping({"distill": "five"})


# ----------------------------------------------------------------------------- batch helper
def test_batch_helper_is_mean_of_per_group_calls_with_padding_ignored():
    nan = float("nan")
    # Three groups of sizes 3, 2 and 4 padded to 4; group 1 has one positive and one negative,
    # group 2 has no positive (falls back to BCE). Padding holds NaN / junk on purpose.
    groups = [
        ([2.0, 0.5, -1.0], [1.0, 0.0, 0.0], [0.9, -1.0, 0.2]),
        ([0.1, 0.4], [0.0, 1.0], [-1.0, -1.0]),
        ([1.0, -2.0, 0.3, 0.0], [0.0, 0.0, 0.0, 0.0], [0.1, 0.2, -1.0, 0.3]),
    ]
    n = 4
    scores = t64([g[0] + [nan] * (n - len(g[0])) for g in groups], requires_grad=True)
    labels = t64([g[1] + [7.0] * (n - len(g[1])) for g in groups])
    teacher = t64([g[2] + [5.0] * (n - len(g[2])) for g in groups])
    mask = torch.tensor([[True] * len(g[0]) + [False] * (n - len(g[0])) for g in groups])

    got = stage2_loss_batch(scores, labels, teacher, mask, **PAPER)
    per_group = [stage2_loss(t64(s), t64(y), t64(t), **PAPER) for s, y, t in groups]
    assert set(got) == {"total", "pairwise", "distill", "pointwise"}
    for key in got:
        expected = sum(out[key].item() for out in per_group) / len(groups)
        assert got[key].item() == pytest.approx(expected, rel=1e-12)
    assert got["total"].item() == pytest.approx(
        (4.066583133967419 + per_group[1]["total"].item()
         + sum(bce(x, 0.0) for x in groups[2][0]) / 4) / 3, rel=1e-12)

    got["total"].backward()
    assert torch.isfinite(scores.grad).all()
    assert (scores.grad[~mask] == 0).all()

    via_cfg = Stage2LossConfig().batch(scores.detach(), labels, teacher, mask)
    assert torch.equal(via_cfg["total"], got["total"].detach())


def test_batch_helper_validation():
    s = t64([[2.0, 0.5], [1.0, 0.0]])
    y = t64([[1.0, 0.0], [1.0, 0.0]])
    t = t64([[0.9, 0.1], [-1.0, -1.0]])
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        stage2_loss_batch(s, y, t, torch.ones(2, 2), **PAPER)
    with pytest.raises(ValueError, match="same shape"):
        stage2_loss_batch(s, y[:, :1], t, torch.ones(2, 2, dtype=torch.bool), **PAPER)
    with pytest.raises(ValueError, match="2-D"):
        stage2_loss_batch(s[0], y[0], t[0], torch.ones(2, dtype=torch.bool), **PAPER)
    with pytest.raises(ValueError, match="group 1: .*empty query group"):
        stage2_loss_batch(s, y, t, torch.tensor([[True, True], [False, False]]), **PAPER)
