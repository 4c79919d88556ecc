"""Pairwise (listwise-softmax) ranking term of the stage-2 loss (RankVideo, paper eqs. 3-7).

Paper (Skow et al., arXiv 2602.02444, stage-2 objective, eqs. 3-7): over one query group of
scores ``s_i = logit("yes") - logit("no")``, the positive should win a softmax over the group,

    L_pair = -log( exp(s_+ / tau_pair) / sum_j exp(s_j / tau_pair) ),   tau_pair = 10 (paper).

Shapes: ``scores`` and ``labels`` are 1-D tensors of the same length n (one query group: the
positive(s) and the K hard negatives of one query; paper K = 2). ``labels`` is 1 for a positive,
0 for a negative. Returns a 0-d tensor.

Several positives: each positive's log-probability is taken against the *whole* group (the other
positives stay in the denominator) and the results are averaged, which is what the official code
does (``-log_softmax(s / tau)[pos].mean()``). The paper only describes the one-positive case.

Relation to the other terms: this is the only term that compares the candidates of a group with
one another, so it is what trains the *ranking*; it is blind to the absolute level of the scores
(adding a constant to every s_i changes nothing). :mod:`.distill` and :mod:`.pointwise` are
per-pair BCE terms that pin that level (teacher confidence, calibrated yes/no). The term is
undefined without both a positive and a negative; :func:`rankvideo.losses.stage2_loss` checks
for that first and falls back to plain BCE, as the official code does. This function only does
the maths on an already-validated group (full validation lives in ``stage2_loss``); it raises
only for the cases where its own formula is undefined.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["pairwise_loss"]


def pairwise_loss(scores: torch.Tensor, labels: torch.Tensor, *, tau: float) -> torch.Tensor:
    """``-log softmax(scores / tau)[positive]``, averaged over the positives.

    Args:
        scores: [n] float, s_i = logit(yes) - logit(no) of each pair of the group.
        labels: [n], 1 for positives and 0 for negatives (float, int or bool).
        tau: softmax temperature tau_pair (> 0). A larger tau flattens the softmax, so the loss
            saturates more slowly and the gradients stay small (paper: 10).
    """
    if scores.dim() != 1 or labels.shape != scores.shape:
        raise ValueError(
            f"pairwise_loss: scores and labels must be 1-D of equal length, got "
            f"{tuple(scores.shape)} and {tuple(labels.shape)}")
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"pairwise_loss: tau must be a finite number > 0, got {tau!r}")
    pos = labels.to(scores.device) > 0.5
    if not bool(pos.any()) or bool(pos.all()):
        # With no positive there is nothing to rank first; with no negative every positive only
        # competes with other positives. The paper's pairwise term needs both.
        raise ValueError(
            "pairwise_loss: the group needs at least one positive and one negative "
            f"(got {int(pos.sum())} positive(s) of {pos.numel()}); stage2_loss falls back to BCE "
            "for such groups")
    log_probs = F.log_softmax(scores / tau, dim=0)
    return -log_probs[pos].mean()
