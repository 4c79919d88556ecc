"""The stage-2 reranking loss of RankVideo: the three terms combined (paper eqs. 3-7).

Paper (Skow et al., arXiv 2602.02444, stage-2 objective, eqs. 3-7), over one query group (one
positive and K hard negatives of the same query; paper K = 2) with scores
``s_i = logit("yes") - logit("no")``:

    L = pairwise * L_pair + distill * L_distill + pointwise * L_point

with L_pair from :mod:`.pairwise` (ranks the group), L_distill from :mod:`.distill` (teacher
p_yes) and L_point from :mod:`.pointwise` (calibrated yes/no). The paper writes the pairwise
weight as 1 and uses lambda_distill = 5, lambda_point = 0.5; the official code uses
lambda_point = 1.0. Both are exposed as presets of :class:`Stage2LossConfig` (``paper``,
``official_code``), which differ only in that weight. The temperatures tau_distill = 5 and
tau_point = 1 are not in the paper; both presets take them from the official code.

Groups without a positive or without a negative: the pairwise term is undefined there, and the
official code then uses plain ``BCEWithLogits(s, y)`` (mean, no temperature) as the whole loss.
We do the same for ``total``. The other entries are still reported, for logging: ``pairwise`` is
0 (a zero that stays connected to the graph), ``distill`` and ``pointwise`` are computed normally
(both are per-pair terms, well defined on any group), but they do NOT enter ``total`` then.

Nothing numeric is hard-coded here: every weight, temperature and target is an argument, and the
defaults live in one place, :class:`Stage2LossConfig` (the official code buries 0.1 / 0.5 inside
its loss; here the config records them).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from rankvideo.losses.distill import distill_loss
from rankvideo.losses.pairwise import pairwise_loss
from rankvideo.losses.pointwise import pointwise_loss

__all__ = ["Stage2LossConfig", "stage2_loss", "stage2_loss_batch", "PRESETS", "LOSS_KEYS"]

#: Keys of the dict that :func:`stage2_loss` and :func:`stage2_loss_batch` return.
LOSS_KEYS: tuple[str, ...] = ("total", "pairwise", "distill", "pointwise")


def _check_hparams(
    *, pairwise: float, distill: float, pointwise: float, tau_pair: float, tau_distill: float,
    tau_point: float, neg_target: float, neg_weight: float,
) -> None:
    """Reject hyper-parameters that cannot be meant; shared by the function and the config."""
    for name, tau in (("tau_pair", tau_pair), ("tau_distill", tau_distill), ("tau_point", tau_point)):
        if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
            raise ValueError(f"stage-2 loss: temperature {name} must be a finite number > 0, got {tau!r}")
    for name, w in (("pairwise", pairwise), ("distill", distill), ("pointwise", pointwise),
                    ("neg_weight", neg_weight)):
        # A negative weight would *maximise* a term: almost surely a sign typo in a config.
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
            raise ValueError(f"stage-2 loss: weight {name} must be a finite number >= 0, got {w!r}")
    if not (isinstance(neg_target, (int, float)) and 0.0 <= neg_target <= 1.0):
        # It is a BCE target, i.e. a probability.
        raise ValueError(f"stage-2 loss: neg_target must lie in [0, 1], got {neg_target!r}")


def _check_group(scores: torch.Tensor, labels: torch.Tensor, teacher_p_yes: torch.Tensor) -> None:
    """The input contract of one query group (see :func:`stage2_loss`)."""
    for name, t in (("scores", scores), ("labels", labels), ("teacher_p_yes", teacher_p_yes)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"stage2_loss: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 1:
            raise ValueError(
                f"stage2_loss: {name} must be 1-D (one query group), got shape {tuple(t.shape)}; "
                "use stage2_loss_batch for [groups, n] inputs")
    n = scores.numel()
    if labels.numel() != n or teacher_p_yes.numel() != n:
        raise ValueError(
            f"stage2_loss: scores, labels and teacher_p_yes must have equal length, got "
            f"{n}, {labels.numel()} and {teacher_p_yes.numel()}")
    if n == 0:
        raise ValueError("stage2_loss: empty query group (n = 0); every group needs at least one pair")
    if not scores.is_floating_point():
        raise ValueError(f"stage2_loss: scores must be a floating-point tensor, got {scores.dtype}")
    # These checks read values back (one host sync per group): cheap next to a VLM forward pass,
    # and a NaN score caught here names its cause instead of silently poisoning the LoRA weights.
    if not bool(torch.isfinite(scores).all()):
        bad = torch.nonzero(~torch.isfinite(scores)).flatten().tolist()
        raise ValueError(f"stage2_loss: non-finite scores at positions {bad}: {scores.tolist()}")
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError(f"stage2_loss: labels must be 0 or 1, got {labels.tolist()}")
    if teacher_p_yes.is_floating_point() and bool(torch.isnan(teacher_p_yes).any()):
        raise ValueError(
            "stage2_loss: teacher_p_yes has NaN; mark a pair without a teacher label with a "
            f"negative value (e.g. -1), got {teacher_p_yes.tolist()}")
    if bool((teacher_p_yes > 1).any()):
        raise ValueError(
            f"stage2_loss: teacher_p_yes values must be probabilities <= 1 (or < 0 for 'no teacher "
            f"label'), got {teacher_p_yes.tolist()}")


def stage2_loss(
    scores: torch.Tensor,
    labels: torch.Tensor,
    teacher_p_yes: torch.Tensor,
    *,
    pairwise: float,
    distill: float,
    pointwise: float,
    tau_pair: float,
    tau_distill: float,
    tau_point: float,
    neg_target: float,
    neg_weight: float,
) -> dict[str, torch.Tensor]:
    """The stage-2 loss of one query group.

    Args:
        scores: [n] float, s_i = logit(yes) - logit(no) of each (query, video) pair.
        labels: [n], 1 for the positive(s), 0 for the negatives.
        teacher_p_yes: [n] float, the teacher's p_yes in [0, 1]; a value < 0 means "no teacher
            label" for that pair.
        pairwise, distill, pointwise: weights of L_pair, L_distill, L_point in ``total``.
        tau_pair, tau_distill, tau_point: temperatures of the three terms (> 0).
        neg_target, neg_weight: BCE target and per-pair weight of a negative in L_point.

    Returns:
        ``{"total", "pairwise", "distill", "pointwise"}``, each a 0-d tensor; the three terms are
        unweighted, ``total = pairwise * L_pair + distill * L_distill + pointwise * L_point``.
        Exception: a group with no positive or no negative gets ``total = BCEWithLogits(s,
        labels)`` (mean, no temperature; the official code's fallback), ``pairwise`` = 0 and
        ``distill`` / ``pointwise`` computed as usual but left out of ``total``.

    Raises:
        ValueError: inputs that are not 1-D, of unequal length or empty; non-finite scores;
            labels outside {0, 1}; teacher values > 1 or NaN; temperatures <= 0; negative
            weights; neg_target outside [0, 1].
    """
    _check_hparams(pairwise=pairwise, distill=distill, pointwise=pointwise, tau_pair=tau_pair,
                   tau_distill=tau_distill, tau_point=tau_point, neg_target=neg_target,
                   neg_weight=neg_weight)
    _check_group(scores, labels, teacher_p_yes)
    labels = labels.to(device=scores.device, dtype=scores.dtype)
    teacher_p_yes = teacher_p_yes.to(device=scores.device, dtype=scores.dtype)

    loss_distill = distill_loss(scores, teacher_p_yes, tau=tau_distill)
    loss_point = pointwise_loss(scores, labels, tau=tau_point, neg_target=neg_target,
                                neg_weight=neg_weight)
    n_pos = int((labels > 0.5).sum())
    if n_pos == 0 or n_pos == labels.numel():
        # Official-code fallback: without both a positive and a negative the softmax term has
        # nothing to rank, so the whole loss becomes plain BCE on the raw scores.
        zero = scores.new_zeros(()) + scores.sum() * 0.0  # exact 0, still on the graph
        total = F.binary_cross_entropy_with_logits(scores, labels)
        return {"total": total, "pairwise": zero, "distill": loss_distill, "pointwise": loss_point}

    loss_pair = pairwise_loss(scores, labels, tau=tau_pair)
    total = pairwise * loss_pair + distill * loss_distill + pointwise * loss_point
    return {"total": total, "pairwise": loss_pair, "distill": loss_distill, "pointwise": loss_point}


def stage2_loss_batch(
    scores: torch.Tensor,
    labels: torch.Tensor,
    teacher: torch.Tensor,
    mask: torch.Tensor,
    **weights: float,
) -> dict[str, torch.Tensor]:
    """:func:`stage2_loss` on G padded query groups, each entry averaged over the groups.

    Args:
        scores, labels, teacher: [G, n], row g holding group g, padded to the longest group.
        mask: [G, n] bool, True on real pairs, False on padding. Padding never reaches the loss
            (its values may be anything, even NaN) and gets zero gradient.
        **weights: the keyword arguments of :func:`stage2_loss` (all eight are required there).

    Returns:
        The four entries of :func:`stage2_loss`, each the plain mean over the G groups (every
        group counts once, whatever its size, as in the official code's one-group steps).
    """
    for name, t in (("scores", scores), ("labels", labels), ("teacher", teacher), ("mask", mask)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"stage2_loss_batch: {name} must be a 2-D [groups, n] tensor, got {shape}")
    if not (labels.shape == teacher.shape == mask.shape == scores.shape):
        raise ValueError(
            "stage2_loss_batch: scores, labels, teacher and mask must have the same shape, got "
            f"{tuple(scores.shape)}, {tuple(labels.shape)}, {tuple(teacher.shape)}, {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"stage2_loss_batch: mask must be a bool tensor, got {mask.dtype}")
    if scores.shape[0] == 0:
        raise ValueError("stage2_loss_batch: no groups (G = 0)")
    per_group = []
    for g in range(scores.shape[0]):
        keep = mask[g].to(scores.device)
        try:
            per_group.append(stage2_loss(scores[g][keep], labels[g][keep.to(labels.device)],
                                         teacher[g][keep.to(teacher.device)], **weights))
        except ValueError as err:
            raise ValueError(f"stage2_loss_batch: group {g}: {err}") from err
    return {k: torch.stack([out[k] for out in per_group]).mean() for k in LOSS_KEYS}


@dataclass(frozen=True)
class Stage2LossConfig:
    """Weights, temperatures and targets of the stage-2 loss; the defaults are the paper preset.

    ``pairwise``/``distill``/``pointwise`` weight L_pair, L_distill, L_point (paper 1, 5, 0.5);
    ``tau_*`` are the temperatures (tau_pair 10 from the paper; tau_distill 5 and tau_point 1 from
    the official code, the paper gives none); ``neg_target``/``neg_weight`` are the BCE target and
    weight of a negative in L_point (0.1 and 0.5, the official code's constants).
    """

    pairwise: float = 1.0
    distill: float = 5.0
    pointwise: float = 0.5
    tau_pair: float = 10.0
    tau_distill: float = 5.0
    tau_point: float = 1.0
    neg_target: float = 0.1
    neg_weight: float = 0.5

    def __post_init__(self) -> None:
        # Fail when the config is built (Hydra compose time), not at the first training step.
        _check_hparams(**self.as_kwargs())

    def as_kwargs(self) -> dict[str, float]:
        """The fields as keyword arguments of :func:`stage2_loss`."""
        return dataclasses.asdict(self)

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor,
                 teacher: torch.Tensor) -> dict[str, torch.Tensor]:
        """:func:`stage2_loss` of one query group with this config."""
        return stage2_loss(scores, labels, teacher, **self.as_kwargs())

    def batch(self, scores: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor,
              mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """:func:`stage2_loss_batch` of [G, n] padded groups with this config."""
        return stage2_loss_batch(scores, labels, teacher, mask, **self.as_kwargs())

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> "Stage2LossConfig":
        """Build from a mapping (a plain dict or an OmegaConf node); absent keys keep the defaults.

        Unknown keys raise a ValueError that names them, so ``tau_pairs: 5`` in a YAML file
        fails instead of silently training with tau_pair = 10.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in d.keys() if k not in known)
        if unknown:
            raise ValueError(
                f"Stage2LossConfig: unknown key(s) {unknown}; the allowed keys are {sorted(known)}")
        values: dict[str, float] = {}
        for k, v in d.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"Stage2LossConfig: {k} must be a number, got {v!r}")
            values[str(k)] = float(v)
        return cls(**values)

    @classmethod
    def paper(cls) -> "Stage2LossConfig":
        """The paper's preset (lambda_distill 5, lambda_point 0.5): the defaults."""
        return cls()

    @classmethod
    def official_code(cls) -> "Stage2LossConfig":
        """The official code's preset: as the paper, but lambda_point = 1.0."""
        return cls(pointwise=1.0)


#: Named presets, as a config's ``loss.preset`` would pick them.
PRESETS: dict[str, Stage2LossConfig] = {
    "paper": Stage2LossConfig.paper(),
    "official_code": Stage2LossConfig.official_code(),
}
