"""Stage-2 reranking loss of RankVideo (paper eqs. 3-7), one module per term.

* :mod:`.pairwise`  -- L_pair, listwise softmax over one query group (orders the group);
* :mod:`.distill`   -- L_distill, BCE towards the teacher's p_yes (soft score level);
* :mod:`.pointwise` -- L_point, weighted BCE towards the gold labels (calibrated score level);
* :mod:`.stage2`    -- the weighted sum, the official code's BCE fallback, a batched helper over
  padded groups, and :class:`Stage2LossConfig` holding every number (presets ``paper`` and
  ``official_code``).
"""

from rankvideo.losses.distill import distill_loss
from rankvideo.losses.pairwise import pairwise_loss
from rankvideo.losses.pointwise import pointwise_loss
from rankvideo.losses.stage2 import LOSS_KEYS, PRESETS, Stage2LossConfig, stage2_loss, stage2_loss_batch

__all__ = [
    "stage2_loss",
    "stage2_loss_batch",
    "pairwise_loss",
    "distill_loss",
    "pointwise_loss",
    "Stage2LossConfig",
    "PRESETS",
    "LOSS_KEYS",
]
