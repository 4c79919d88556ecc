"""Reranking as Lightning `predict`, sharded across GPUs and nodes.

Each rank scores its share of the videos (every `world`-th video of the sorted plan, from its
rank), one `predict_step` per video, and appends the scores to its own progress file. With
`num_workers` > 0, DataLoader workers decode the next videos while the model scores the current
one; a video that fails to decode in a worker arrives as a reason to skip it, never as a dead
worker. Lightning
places the model on the rank's device, applies the precision and launches the processes (its own
launcher, torchrun or SLURM). A resumed run skips every video completed by any rank of any earlier
run with the same fingerprint, whatever its number of ranks. After a barrier, global rank 0 merges
the progress files; the merged run does not depend on the number of ranks (tested: 1 vs 2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
from torch.utils.data import DataLoader, Dataset

from ..models.rerank import VideoScoringRun

class PrefetchedClips(Dataset):
    """Item i: `(doc, clip, None)`, or `(doc, None, reason)` when `fetch(doc)` returned a reason or
    raised (any exception: a worker must not die on one bad file). `fetch(doc) -> (clip, reason)`."""

    def __init__(self, docs: Sequence[str], fetch: Callable[[str], tuple]):
        self.docs, self.fetch = list(docs), fetch

    def __len__(self) -> int:
        return len(self.docs)

    def __getitem__(self, i: int):
        doc = self.docs[i]
        try:
            clip, reason = self.fetch(doc)
        except Exception as e:  # noqa: BLE001 - reported as the video's skip reason
            clip, reason = None, f"{type(e).__name__}: {e}"
        return doc, clip, reason


def _as_is(item):
    return item


class RerankPredictModule(L.LightningModule):
    """`load()` -> (model, processor), called once per rank in `configure_model`;
    `make_run(score_video, rank, world)` -> the rank's `VideoScoringRun`; `score(model, processor,
    doc, texts, clip)` -> one score per text; `fetch(doc) -> (clip, skip reason)` reads a video in
    the DataLoader (in `num_workers` worker processes, or in the main process with 0)."""

    def __init__(self, load: Callable[[], tuple], make_run: Callable[..., VideoScoringRun], score: Callable[..., list[float]],
                 *, fetch: Callable[[str], tuple], num_workers: int = 0):
        super().__init__()
        self._load, self._make_run, self._score = load, make_run, score
        self._fetch, self.num_workers = fetch, int(num_workers)
        self.model = None
        self.processor = None
        self.run: VideoScoringRun | None = None
        self._clip = None  # the clip of the video being scored

    def configure_model(self) -> None:
        if self.model is None:
            self.model, self.processor = self._load()
            self.model.eval()

    def predict_dataloader(self) -> DataLoader:
        self.run = self._make_run(lambda doc, texts: self._score(self.model, self.processor, doc, texts, self._clip),
                                  self.global_rank, self.trainer.world_size).__enter__()
        # One video per step; a rank's share was fixed by the plan, so no distributed sampler.
        workers = self.num_workers if self.run.todo else 0
        return DataLoader(PrefetchedClips(self.run.todo, self._fetch), batch_size=None, shuffle=False,
                          collate_fn=_as_is, num_workers=workers, prefetch_factor=2 if workers else None,
                          persistent_workers=False)

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        # (doc, Clip, reason): numpy frames the scorer preprocesses and moves itself.
        return batch

    def predict_step(self, item, batch_idx: int) -> None:
        doc, clip, reason = item
        self._clip = clip
        try:
            self.run.score_one(doc, skip_reason=reason)
        finally:
            self._clip = None

    def on_predict_end(self) -> None:
        self.close_run()

    def close_run(self) -> None:
        """Close this rank's progress file and fix its timings. Lightning does not call
        `on_predict_end` when the rank has nothing left to score (a fully resumed run), so the
        caller closes the run after `trainer.predict` too; closing twice is harmless."""
        if self.run is not None:
            self.run.__exit__(None, None, None)
