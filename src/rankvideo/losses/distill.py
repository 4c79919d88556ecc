"""Teacher-distillation term of the stage-2 loss (RankVideo, paper eqs. 3-7).

Paper (Skow et al., arXiv 2602.02444, stage-2 objective, eqs. 3-7): the student's
yes-probability, softened by a temperature, is pulled towards the text-only teacher's p_yes
(ReasonRank reading captions + ASR; paper section 3, teacher labels):

    L_distill = mean_{i : teacher known} BCEWithLogits(s_i / tau_distill, p_teacher_i).

tau_distill is not given in the paper; the official code uses 5.0, which the presets copy.

Shapes: ``scores`` and ``teacher_p_yes`` are 1-D tensors of the same length n (one query group).
``teacher_p_yes`` holds probabilities in [0, 1]; a value below 0 (the official code writes -1)
means "this pair has no teacher label" and the pair is left out of the mean. Returns a 0-d
tensor.

Relation to the other terms: like :mod:`.pointwise` this is a per-pair BCE that sets the absolute
level of each score, but towards a *soft* target (the teacher's confidence) rather than the hard
label, so it carries the teacher's graded notion of "how relevant" that the binary labels lack;
:mod:`.pairwise` only orders the group. When no pair of the group has a teacher label the term is
exactly 0 and contributes no gradient, but stays connected to ``scores`` so that ``backward()``
on the total works and DDP sees every parameter used.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["distill_loss"]


def distill_loss(scores: torch.Tensor, teacher_p_yes: torch.Tensor, *, tau: float) -> torch.Tensor:
    """Mean BCE-with-logits of ``scores / tau`` against the teacher's p_yes over labelled pairs.

    Args:
        scores: [n] float, s_i = logit(yes) - logit(no).
        teacher_p_yes: [n] float, teacher p_yes in [0, 1]; < 0 marks "no teacher label".
        tau: temperature tau_distill (> 0). A larger tau means a given teacher probability asks
            for a larger student margin s_i (the student matches sigmoid(s / tau), not sigmoid(s)).
    """
    if scores.dim() != 1 or teacher_p_yes.shape != scores.shape:
        raise ValueError(
            f"distill_loss: scores and teacher_p_yes must be 1-D of equal length, got "
            f"{tuple(scores.shape)} and {tuple(teacher_p_yes.shape)}")
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"distill_loss: tau must be a finite number > 0, got {tau!r}")
    teacher = teacher_p_yes.to(device=scores.device, dtype=scores.dtype)
    known = teacher >= 0.0
    if not bool(known.any()):
        # Exactly zero, yet still a function of `scores` (zero gradient): keeps the autograd graph
        # connected. `new_zeros + (...) * 0` also avoids returning -0.0 when sum(scores) < 0.
        return scores.new_zeros(()) + scores.sum() * 0.0
    # Select before the BCE (rather than masking a per-pair loss afterwards) so the -1
    # placeholders never enter the arithmetic at all.
    return F.binary_cross_entropy_with_logits(scores[known] / tau, teacher[known])
