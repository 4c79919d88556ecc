"""Reranking as Lightning `predict`, sharded across GPUs and nodes.

Each rank scores its share of the videos (every `world`-th video of the sorted plan, from its
rank), one `predict_step` per video, and appends the scores to its own progress file. Lightning
places the model on the rank's device, applies the precision and launches the processes (its own
launcher, torchrun or SLURM). A resumed run skips every video completed by any rank of any earlier
run with the same fingerprint, whatever its number of ranks. After a barrier, global rank 0 merges
the progress files; the merged run does not depend on the number of ranks (tested: 1 vs 2).
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from torch.utils.data import DataLoader

from ..models.rerank import VideoScoringRun


class RerankPredictModule(L.LightningModule):
    """`load()` -> (model, processor), called once per rank in `configure_model`;
    `make_run(score_video, rank, world)` -> the rank's `VideoScoringRun`; `score(model, processor,
    doc, texts)` -> one score per text."""

    def __init__(self, load: Callable[[], tuple], make_run: Callable[..., VideoScoringRun], score: Callable[..., list[float]]):
        super().__init__()
        self._load, self._make_run, self._score = load, make_run, score
        self.model = None
        self.processor = None
        self.run: VideoScoringRun | None = None

    def configure_model(self) -> None:
        if self.model is None:
            self.model, self.processor = self._load()
            self.model.eval()

    def predict_dataloader(self) -> DataLoader:
        self.run = self._make_run(lambda doc, texts: self._score(self.model, self.processor, doc, texts),
                                  self.global_rank, self.trainer.world_size).__enter__()
        # One video per step; a rank's share was fixed by the plan, so no distributed sampler.
        return DataLoader(self.run.todo, batch_size=None, shuffle=False)

    def predict_step(self, doc: str, batch_idx: int) -> None:
        self.run.score_one(doc)

    def on_predict_end(self) -> None:
        self.close_run()

    def close_run(self) -> None:
        """Close this rank's progress file and fix its timings. Lightning does not call
        `on_predict_end` when the rank has nothing left to score (a fully resumed run), so the
        caller closes the run after `trainer.predict` too; closing twice is harmless."""
        if self.run is not None:
            self.run.__exit__(None, None, None)
