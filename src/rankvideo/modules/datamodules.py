"""DataModules of the curriculum: clips from the benchmark, encoded by the backbone's processor.

They live beside the LightningModules that consume their batches: they use the model layer's
prompt encoding, which the data layer (`rankvideo.data`) never imports.

Encoding (chat template, frames to patches) happens in `collate`, in the main process: the
processor is cheap at these sizes, and keeping one process keeps runs deterministic on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader

from ..data.clips import ClipStore
from ..data.samplers import GroupSampler, QueryGroup
from ..models.grouped import encode_queries_for_video
from ..models.scoring import encode_caption_examples, encode_pairs


def _loader(items, batch_size: int, collate, *, shuffle: bool, seed: int, num_workers: int = 0) -> DataLoader:
    """Batches of `items`; with `num_workers` > 0 the collate (video decoding and the processor) runs
    in worker processes, beside the training step. Each worker decodes into its own copy of the clip
    cache, which ends with the loader: an epoch's loader decodes its videos again."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(items, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=gen,
                      num_workers=num_workers, prefetch_factor=2 if num_workers else None)


class Stage1DataModule(L.LightningDataModule):
    """(doc_id, caption) examples -> caption-SFT batches with labels.

    `val_examples` (held-out videos) give each validation batch twice: with its own videos and with
    the videos rotated by one inside the batch, so the module can measure how much the caption
    loss depends on seeing the right video."""

    def __init__(self, examples: Sequence[tuple[str, str]], clips: ClipStore, processor, *, batch_size: int, seed: int,
                 val_examples: Sequence[tuple[str, str]] = (), num_workers: int = 0):
        super().__init__()
        self.num_workers = int(num_workers)
        if not examples:
            raise ValueError("stage 1 has no training examples (no training query with a captioned positive video)")
        self.examples, self.clips, self.processor = list(examples), clips, processor
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.val_examples = list(val_examples)

    def collate(self, rows):
        return encode_caption_examples(self.processor, [self.clips[d] for d, _ in rows], [c for _, c in rows])

    def collate_val(self, rows):
        clips = [self.clips[d] for d, _ in rows]
        caps = [c for _, c in rows]
        out = {"matched": encode_caption_examples(self.processor, clips, caps)}
        if len(rows) > 1:
            out["shuffled"] = encode_caption_examples(self.processor, clips[1:] + clips[:1], caps)
        return out

    def train_dataloader(self):
        # The order of an epoch is a function of (seed, epoch), not of how many epochs this process
        # has run: a run resumed from a checkpoint sees the same batches as an uninterrupted one.
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        return _loader(self.examples, self.batch_size, self.collate, shuffle=True, seed=self.seed * 100_003 + epoch,
                       num_workers=self.num_workers)

    def val_dataloader(self):
        if not self.val_examples:
            return []
        return DataLoader(self.val_examples, batch_size=self.batch_size, shuffle=False, collate_fn=self.collate_val,
                          num_workers=0)


class Stage2DataModule(L.LightningDataModule):
    """Query groups (re-drawn each epoch by the seeded sampler) for training; (query, candidate)
    pairs of the val queries' first-stage heads for validation."""

    def __init__(self, sampler: GroupSampler, clips: ClipStore, processor, *, batch_size: int,
                 val_pairs: Sequence[tuple[str, str, str]] = (), prompt: str = "paper", num_workers: int = 0):
        super().__init__()
        self.num_workers = int(num_workers)
        self.sampler, self.clips, self.processor = sampler, clips, processor
        self.batch_size, self.val_pairs, self.prompt = int(batch_size), list(val_pairs), prompt

    def collate_groups(self, groups: list[QueryGroup]):
        n = max(len(g.doc_ids) for g in groups)
        clips, texts = [], []
        labels = torch.zeros(len(groups), n)
        teacher = torch.full((len(groups), n), -1.0)
        mask = torch.zeros(len(groups), n, dtype=torch.bool)
        for i, g in enumerate(groups):
            k = len(g.doc_ids)
            clips += [self.clips[d] for d in g.doc_ids]
            texts += [g.query] * k
            labels[i, :k] = torch.tensor(g.labels, dtype=torch.float32)
            teacher[i, :k] = torch.tensor(g.teacher, dtype=torch.float32)
            mask[i, :k] = True
        if not bool(mask.all()):
            raise ValueError("query groups of different sizes in one batch; every group has 1 + K pairs")
        return {"inputs": encode_pairs(self.processor, clips, texts, prompt=self.prompt), "labels": labels, "teacher": teacher, "mask": mask}

    def collate_video(self, item):
        """One validation batch = one video and the val queries that retrieved it: the video is
        preprocessed and vision-encoded once (see rankvideo.models.grouped)."""
        doc, rows = item
        batch, pixels, grid = encode_queries_for_video(self.processor, self.clips[doc], [t for _, t in rows],
                                                       prompt=self.prompt)
        return {"inputs": batch, "pixels": pixels, "grid": grid, "qids": [q for q, _ in rows], "doc_ids": [doc] * len(rows)}

    def train_dataloader(self):
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        # The sampler already shuffles per (seed, epoch); the loader keeps that order.
        return DataLoader(self.sampler.groups(epoch), batch_size=self.batch_size, shuffle=False,
                          collate_fn=self.collate_groups, num_workers=self.num_workers,
                          prefetch_factor=2 if self.num_workers else None)

    def val_dataloader(self):
        if not self.val_pairs:
            return []
        by_video: dict[str, list[tuple[str, str]]] = {}
        for qid, doc, text in self.val_pairs:
            by_video.setdefault(doc, []).append((qid, text))
        return DataLoader(sorted(by_video.items()), batch_size=None, shuffle=False, collate_fn=self.collate_video,
                          num_workers=0)
