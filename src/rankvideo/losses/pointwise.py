"""Pointwise calibration term of the stage-2 loss (RankVideo, paper eqs. 3-7).

Paper (Skow et al., arXiv 2602.02444, stage-2 objective, eqs. 3-7): a weighted per-pair BCE
that keeps sigmoid(s) usable as an absolute relevance probability,

    L_point = (1 / n) * sum_i w_i * BCEWithLogits(s_i / tau_point, t_i),
    t_i = 1 for positives, neg_target (0.1) for negatives,
    w_i = 1 for positives, neg_weight (0.5) for negatives.

Our reading of why (the paper states the values, not a rationale): the soft negative target
(0.1, not 0) hedges against false negatives among the mined hard negatives (the mining of paper
section 3 keeps teacher-ambiguous pairs as negatives), and the down-weighting keeps the K
negatives per positive from dominating the term. tau_point is not in the paper; the official code
uses 1.0. The official code hard-codes 0.1 and 0.5 inside its loss; here they are arguments so
that the config records them.

Reduction: exactly torch's ``binary_cross_entropy_with_logits(..., weight=w, reduction="mean")``,
i.e. ``sum(w_i * l_i) / n`` -- divided by the number of pairs, NOT by ``sum(w_i)``. That is what
the official code computes, and it matters: with one positive and two negatives at weight 0.5 the
divisor is 3, not 2.

Shapes: ``scores`` and ``labels`` are 1-D tensors of the same length n (one query group);
``labels`` is 1 for positives, 0 for negatives. Returns a 0-d tensor.

Relation to the other terms: :mod:`.pairwise` orders the group but ignores the score level;
this term anchors the level to the gold labels, and :mod:`.distill` to the teacher's soft
probabilities. Unlike the pairwise term it is defined for any group, including one with no
positive or no negative.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["pointwise_loss"]


def pointwise_loss(
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    tau: float,
    neg_target: float,
    neg_weight: float,
) -> torch.Tensor:
    """Weighted BCE-with-logits of ``scores / tau`` against soft targets, reduced as sum(w*l)/n.

    Args:
        scores: [n] float, s_i = logit(yes) - logit(no).
        labels: [n], 1 for positives and 0 for negatives (float, int or bool).
        tau: temperature tau_point (> 0).
        neg_target: BCE target of a negative, in [0, 1] (paper 0.1).
        neg_weight: per-pair weight of a negative, >= 0 (paper 0.5); positives weigh 1.0.
    """
    if scores.dim() != 1 or labels.shape != scores.shape:
        raise ValueError(
            f"pointwise_loss: scores and labels must be 1-D of equal length, got "
            f"{tuple(scores.shape)} and {tuple(labels.shape)}")
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"pointwise_loss: tau must be a finite number > 0, got {tau!r}")
    if not (0.0 <= neg_target <= 1.0):
        raise ValueError(f"pointwise_loss: neg_target must lie in [0, 1], got {neg_target!r}")
    if not (math.isfinite(neg_weight) and neg_weight >= 0):
        raise ValueError(f"pointwise_loss: neg_weight must be a finite number >= 0, got {neg_weight!r}")
    pos = labels.to(scores.device) > 0.5
    target = torch.where(pos, scores.new_tensor(1.0), scores.new_tensor(float(neg_target)))
    weight = torch.where(pos, scores.new_tensor(1.0), scores.new_tensor(float(neg_weight)))
    # weight= with the default mean reduction divides by n, not by sum(weight): the official
    # code's behaviour, kept on purpose (see the module docstring).
    return F.binary_cross_entropy_with_logits(scores / tau, target, weight=weight)
