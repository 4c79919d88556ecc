"""Pre-training of the tiny backbone: `PretrainDataModule` and `PretrainModule`.

The data module draws, for every epoch, a seeded list of batches from the pre-training corpus
(`rankvideo.data.synthetic.pretraining`): each batch has one prompt form, chosen by the schedule
from the progress through training (short prompts first, then instruction and reranking prompts),
and questions of every type mixed in it. The module trains the next-token loss of the answers
(`encode_target_examples`: loss on the answer tokens only) and, every epoch, answers a fixed set of
held-out questions (videos never trained on): accuracy per prompt form and question type, and the
AUC of the reranking prompt's score logit(yes) - logit(no) on relevance queries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.synthetic.pretraining import FORMS, GENERAL_QTYPES, QTYPES, Example, PretrainCorpus, sample_example
from ..models.prompts import USER, build_caption_messages, build_messages, build_question_messages
from ..models.scoring import IGNORE_INDEX, answer_target, caption_target, encode_conversations, encode_target_examples
from ..eval.metrics import roc_auc
from .reranker import BackboneModule

__all__ = ["GROWTH_KEYS", "ROUND_KEYS", "FormPhase", "PretrainDataModule", "PretrainModule", "ProgressLog", "parse_rounds",
           "parse_schedule"]

log = logging.getLogger(__name__)

_HELDOUT_STREAM = 7001


@dataclass(frozen=True)
class FormPhase:
    """Until `until` (a fraction of all training steps), batches take their prompt form from
    `forms` (weights), their question types from `qtypes` (weights; None: the global ones) and
    at most `max_frames` frames per clip (None: all the corpus has)."""

    until: float
    forms: Mapping[str, float]
    qtypes: Mapping[str, float] | None = None
    max_frames: int | None = None
    answers: str = "any"  # "open" (short answers only), "yes_no", or "any"
    turns: int = 1  # questions per conversation about one clip (captions: always one)


def parse_schedule(phases: Sequence[Mapping]) -> list[FormPhase]:
    out = []
    for i, p in enumerate(phases):
        forms = {str(k): float(v) for k, v in dict(p["forms"]).items() if float(v) > 0}
        bad = set(forms) - set(FORMS)
        if bad:
            raise ValueError(f"pretrain.schedule[{i}].forms: unknown prompt forms {sorted(bad)}; choose from {list(FORMS)}")
        if not forms:
            raise ValueError(f"pretrain.schedule[{i}].forms: give at least one form a positive weight")
        qtypes = p.get("qtypes")
        if qtypes is not None:
            qtypes = {str(k): float(v) for k, v in dict(qtypes).items() if float(v) > 0}
            bad = set(qtypes) - set(QTYPES)
            if bad or not qtypes:
                raise ValueError(f"pretrain.schedule[{i}].qtypes: unknown question types {sorted(bad)} or none with a "
                                 f"positive weight; choose from {list(QTYPES)}")
        frames = p.get("max_frames")
        if frames is not None and int(frames) < 1:
            raise ValueError(f"pretrain.schedule[{i}].max_frames must be >= 1, got {frames}")
        answers = str(p.get("answers", "any"))
        if answers not in ("any", "open", "yes_no"):
            raise ValueError(f"pretrain.schedule[{i}].answers must be any, open or yes_no, got {answers!r}")
        turns = int(p.get("turns", 1))
        if turns < 1:
            raise ValueError(f"pretrain.schedule[{i}].turns must be >= 1, got {turns}")
        out.append(FormPhase(float(p["until"]), forms, qtypes, None if frames is None else int(frames), answers, turns))
    if not out or any(a.until >= b.until for a, b in zip(out, out[1:])) or out[-1].until < 1.0:
        raise ValueError("pretrain.schedule: phases need increasing `until` values, the last one 1.0")
    return out


# What a round of pre-training sets; a `pretrain.continued` round inherits the first round's value of
# every key it does not give (its seed: the first round's seed plus its position).
ROUND_KEYS = ("epochs", "steps_per_epoch", "batch_size", "lr", "warmup_ratio", "weight_decay", "vision_lr_scale",
              "seed", "schedule", "qtypes", "val_every_n_epochs")
# Keys of a continued round only, not passed on to the rounds after it, applied before the round trains:
# grow_layers appends that many decoder layers to the language model
# (rankvideo.models.tiny.grow_language_model); widen_vision multiplies the vision tower's width by that
# factor (rankvideo.models.tiny.widen_vision_tower). Each maps to its value that changes nothing, which
# is also its default and its smallest allowed value.
GROWTH_KEYS = {"grow_layers": 0, "widen_vision": 1}


def continued_rounds(node: Mapping) -> list[tuple[str, object]]:
    """The rounds after the first, each with where the config sets it: `pretrain.continued`, then
    `pretrain.extra_rounds` (an experiment's own rounds after the configured ones, so that it need
    not repeat them: a Hydra list replaces a list)."""
    out = []
    for key in ("continued", "extra_rounds"):
        entries = node.get(key) or []
        if not isinstance(entries, (list, tuple)):
            raise ValueError(f"pretrain.{key} must be a list of rounds, got {entries!r}")
        out += [(f"pretrain.{key}[{j}]", r) for j, r in enumerate(entries)]
    return out


def parse_rounds(node: Mapping) -> list[dict]:
    """The rounds of pre-training: the first from the `pretrain` node itself, then one per entry of
    `pretrain.continued` and of `pretrain.extra_rounds` (continued pre-training from the previous
    round's weights, with a fresh optimiser and learning-rate schedule). `node` is the `pretrain`
    node as a plain mapping."""
    first = {k: node[k] for k in ROUND_KEYS}
    out, where = [first], ["pretrain"]
    for i, (at, extra) in enumerate(continued_rounds(node), start=1):
        if not isinstance(extra, Mapping):
            raise ValueError(f"{at} must be a mapping of round settings, got {extra!r}")
        bad = sorted(set(extra) - set(ROUND_KEYS) - set(GROWTH_KEYS))
        if bad:
            raise ValueError(f"{at}: unknown keys {bad}; a round sets {list(ROUND_KEYS) + list(GROWTH_KEYS)}")
        growth = {key: extra.get(key, unchanged) for key, unchanged in GROWTH_KEYS.items()}
        for key, value in growth.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < GROWTH_KEYS[key]:
                raise ValueError(f"{at}.{key} must be an integer >= {GROWTH_KEYS[key]}, got {value!r}")
        out.append({**first, "seed": int(first["seed"]) + i, **dict(extra), **growth})
        where.append(at)
    for r, at in zip(out, where):
        for key in ("epochs", "steps_per_epoch", "batch_size", "val_every_n_epochs"):
            if int(r[key]) < 1:
                raise ValueError(f"{at}.{key} must be >= 1, got {r[key]}")
        if float(r["lr"]) <= 0:
            raise ValueError(f"{at}.lr must be > 0, got {r['lr']}")
        try:
            parse_schedule(r["schedule"])
        except ValueError as e:
            raise ValueError(f"{at}: {e}") from None
    return out


def _messages(ex: Example) -> list[dict]:
    if ex.form == "caption":
        return build_caption_messages()
    if ex.form == "rerank":
        return build_messages(ex.text)
    return build_question_messages(ex.text, system=ex.system)


def _target(ex: Example) -> str:
    return caption_target(ex.answer) if ex.form == "caption" else answer_target(ex.answer)


def _follow_up(ex: Example) -> str:
    return USER.format(query=ex.text) if ex.form == "rerank" else ex.text


def conversation(turns: Sequence[Example]) -> list[dict]:
    """Chat messages of questions about one clip, each answered: the first question in its
    prompt form (system prompt and video included), the others as follow-up user turns."""
    messages = _messages(turns[0]) + [{"role": "assistant", "content": _target(turns[0])}]
    for ex in turns[1:]:
        messages += [{"role": "user", "content": [{"type": "text", "text": _follow_up(ex)}]},
                     {"role": "assistant", "content": _target(ex)}]
    return messages


def encode_examples(processor, corpus: PretrainCorpus, conversations: Sequence[Sequence[Example]],
                    max_frames: int | None = None) -> dict:
    """Processor inputs with labels for conversations of examples (one clip each), and what
    evaluation needs about each row's first example."""
    clips = [corpus.clip(c[0].index, max_frames) for c in conversations]
    if all(len(c) == 1 for c in conversations):
        inputs = encode_target_examples(processor, clips, [_messages(c[0]) for c in conversations],
                                        [_target(c[0]) for c in conversations])
    else:
        inputs = encode_conversations(processor, clips, [conversation(c) for c in conversations])
    # Plain dicts: Lightning moves batches through dataclasses only if they are mutable.
    return {"inputs": inputs, "examples": [asdict(c[0]) for c in conversations]}


class PretrainDataModule(L.LightningDataModule):
    def __init__(self, corpus: PretrainCorpus, processor, *, batch_size: int, steps_per_epoch: int, epochs: int,
                 schedule: Sequence[FormPhase], qtype_weights: Mapping[str, float], seed: int,
                 heldout_per_video: Mapping[str, int], eval_batch_size: int = 32, num_workers: int = 0):
        super().__init__()
        self.corpus, self.processor = corpus, processor
        self.batch_size, self.steps_per_epoch, self.epochs = int(batch_size), int(steps_per_epoch), int(epochs)
        self.schedule, self.seed = list(schedule), int(seed)
        bad = set(qtype_weights) - set(QTYPES)
        if bad:
            raise ValueError(f"pretrain.qtypes: unknown question types {sorted(bad)}; choose from {list(QTYPES)}")
        self.qtypes = [q for q in QTYPES if float(qtype_weights.get(q, 0)) > 0]
        w = np.array([float(qtype_weights[q]) for q in self.qtypes])
        if not len(w):
            raise ValueError("pretrain.qtypes: give at least one question type a positive weight")
        self.qtype_p = w / w.sum()
        self.heldout_per_video = {str(k): int(v) for k, v in heldout_per_video.items()}
        self.eval_batch_size, self.num_workers = int(eval_batch_size), int(num_workers)

    def phase(self, progress: float) -> FormPhase:
        for phase in self.schedule:
            if progress < phase.until:
                return phase
        return self.schedule[-1]

    def _example(self, index: int, form: str, rng: np.random.Generator, qtypes, p, answers: str = "any") -> Example:
        for _ in range(100):
            ex = sample_example(self.corpus.videos[index], qtypes[int(rng.choice(len(qtypes), p=p))], form, rng)
            if ex is not None and (answers == "any" or form == "caption" or ex.yes_no == (answers == "yes_no")):
                return ex
        raise RuntimeError(f"pre-training video {index}: no question of the configured types fits prompt form {form!r}")

    def epoch_batches(self, epoch: int) -> list[tuple[int | None, list[Example]]]:
        """The batches of one epoch, (max frames, examples): a pure function of (seed, epoch) and
        the config."""
        rng = np.random.default_rng([self.seed, epoch])
        train = self.corpus.train_indices
        batches = []
        for b in range(self.steps_per_epoch):
            phase = self.phase((epoch + b / self.steps_per_epoch) / self.epochs)
            forms = list(phase.forms)
            fw = np.array([phase.forms[f] for f in forms])
            form = forms[int(rng.choice(len(forms), p=fw / fw.sum()))]
            qtypes, qp = self.qtypes, self.qtype_p
            if phase.qtypes is not None:
                qtypes = list(phase.qtypes)
                qp = np.array([phase.qtypes[q] for q in qtypes])
                qp = qp / qp.sum()
            videos = rng.choice(len(train), size=self.batch_size, replace=False)
            turns = 1 if form == "caption" else phase.turns
            batches.append((phase.max_frames, [self._conversation(train[int(i)], form, rng, qtypes, qp, phase.answers, turns)
                                               for i in videos]))
        return batches

    def _conversation(self, index: int, form: str, rng, qtypes, p, answers: str, turns: int) -> list[Example]:
        out: list[Example] = []
        for _ in range(4 * turns):
            ex = self._example(index, form, rng, qtypes, p, answers)
            if all(ex.text != o.text for o in out):
                out.append(ex)
            if len(out) == turns:
                break
        return out

    def heldout_examples(self) -> list[Example]:
        """A fixed set of questions about the held-out videos: per video, `heldout_per_video[form]`
        questions in each form, the question types taken in turn so that each type is asked
        about as often as the others."""
        rng = np.random.default_rng([self.seed, _HELDOUT_STREAM])
        out, turn = [], 0
        for index in self.corpus.heldout_indices:
            for form, n in self.heldout_per_video.items():
                for _ in range(n):
                    if form == "caption":
                        out.append(sample_example(self.corpus.videos[index], "caption", form, rng))
                        continue
                    for k in range(len(GENERAL_QTYPES)):  # the next type in turn that this clip and form support
                        qtype = GENERAL_QTYPES[(turn + k) % len(GENERAL_QTYPES)]
                        ex = None
                        for _ in range(20):
                            ex = sample_example(self.corpus.videos[index], qtype, form, rng)
                            if ex is not None:
                                break
                        if ex is not None:
                            out.append(ex)
                            turn += k + 1
                            break
        # A type beyond the first round's (`search`) is asked only by runs that train it: one question
        # per held-out video and yes/no form, from its own stream, so the set above stays as it was.
        extra = [q for q in QTYPES if q not in GENERAL_QTYPES and q in self.trained_qtypes()]
        rng = np.random.default_rng([self.seed, _HELDOUT_STREAM, 1])
        for qtype in extra:
            for index in self.corpus.heldout_indices:
                for form in self.heldout_per_video:
                    if form == "caption":
                        continue
                    for _ in range(50):
                        ex = sample_example(self.corpus.videos[index], qtype, form, rng)
                        if ex is not None:
                            out.append(ex)
                            break
        return out

    def trained_qtypes(self) -> set[str]:
        """Every question type some phase of this run draws from."""
        out = set(self.qtypes)
        for phase in self.schedule:
            if phase.qtypes is not None:
                out |= set(phase.qtypes)
        return out

    def collate(self, item: tuple[int | None, list[list[Example]]]) -> dict:
        max_frames, conversations = item
        return encode_examples(self.processor, self.corpus, conversations, max_frames)

    def train_dataloader(self):
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        phase = self.phase(epoch / self.epochs)
        if epoch == 0 or phase != self.phase((epoch - 1) / self.epochs):
            log.info("pre-training epoch %d: prompt forms %s, question types %s, %s frames, %d questions per clip", epoch,
                     dict(phase.forms), dict(phase.qtypes) if phase.qtypes else "all", phase.max_frames or "all",
                     phase.turns)
        return DataLoader(self.epoch_batches(epoch), batch_size=None, shuffle=False, collate_fn=self.collate,
                          num_workers=self.num_workers, persistent_workers=False)

    def val_dataloader(self):
        held = sorted(self.heldout_examples(), key=lambda e: (FORMS.index(e.form), e.qtype, e.index))
        # Asked with as many frames as the current phase trains with (all of them in the last).
        epoch = self.trainer.current_epoch if self.trainer is not None else self.epochs
        frames = self.phase(min(epoch / self.epochs, 1.0)).max_frames
        chunks = [(frames, [[e] for e in held[i : i + self.eval_batch_size]]) for i in range(0, len(held), self.eval_batch_size)]
        return DataLoader(chunks, batch_size=None, shuffle=False, collate_fn=self.collate, num_workers=0)


class PretrainModule(BackboneModule):
    """Next-token loss of the answers; held-out accuracy per prompt form and question type."""

    def __init__(self, *, yes_no_ids: tuple[int, int], **kwargs):
        super().__init__(**kwargs)
        self.yes_no_ids = (int(yes_no_ids[0]), int(yes_no_ids[1]))
        self._rows: list[dict] = []
        self.heldout: dict = {}

    def training_step(self, batch, batch_idx):
        inputs = batch["inputs"]
        out = self.model(**{k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}, use_cache=False)
        n = int(inputs["input_ids"].shape[0])
        self.log("train/loss", out.loss, prog_bar=True, batch_size=n)
        self.log(f"train/loss_{batch['examples'][0]['form']}", out.loss, batch_size=n)
        return out.loss

    def on_validation_epoch_start(self) -> None:
        self._rows = []

    def validation_step(self, batch, batch_idx):
        inputs = batch["inputs"]
        labels = inputs["labels"]
        out = self.model(**{k: v for k, v in inputs.items() if isinstance(v, torch.Tensor) and k != "labels"}, use_cache=False)
        logits = out.logits[:, :-1].float()
        target = labels[:, 1:]
        mask = target != IGNORE_INDEX
        correct = (logits.argmax(-1) == target) | ~mask
        # Loss per row, on its target tokens (the caption rows' held-out NLL).
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
        nll = (nll * mask).sum(-1) / mask.sum(-1)
        yes, no = self.yes_no_ids
        for i, ex in enumerate(batch["examples"]):
            pos = mask[i].nonzero().flatten()
            row = {"form": ex["form"], "qtype": ex["qtype"], "exact": bool(correct[i].all()), "nll": float(nll[i])}
            if ex["yes_no"]:
                # The first target token is <answer>; the answer word is predicted at its position.
                at = int(pos[0]) + 1
                margin = float(logits[i, at, yes] - logits[i, at, no])
                row.update(margin=margin, label=ex["answer"] == "yes", correct=(margin > 0) == (ex["answer"] == "yes"))
                if ex.get("grade") is not None:
                    row["grade"] = int(ex["grade"])
            else:
                row["correct"] = row["exact"]
            self._rows.append(row)

    def on_validation_epoch_end(self) -> None:
        table = summarise(self._rows)
        self.heldout = table
        for key, value in table["accuracy"].items():
            self.log(f"heldout/acc/{key}", value)
        for key, value in table["auc"].items():
            if value is not None:
                self.log(f"heldout/auc/{key}", value)
        if "caption" in table["nll"]:
            self.log("heldout/nll/caption", table["nll"]["caption"])
        self.log("heldout/acc", table["accuracy"].get("all", 0.0), prog_bar=True)


def summarise(rows: Sequence[dict]) -> dict:
    """Accuracy per `form/qtype`, per form and overall (caption rows excluded: they have no
    single answer), the AUC of the margin per form on yes/no rows (`rerank/relevance` is the
    reranking prompt on generic relevance queries), and the mean caption NLL per token. Rows of
    a type with graded partial matches (`graded`) also give the AUC of full matches against
    partial ones (`<form>/<qtype>/full_vs_partial`) and of partial matches against irrelevant clips
    (`<form>/<qtype>/partial_vs_none`), whatever their drawn answers."""
    acc: dict[str, list[bool]] = {}
    auc_rows: dict[str, list[tuple[float, bool]]] = {}
    nll: dict[str, list[float]] = {}
    for r in rows:
        if r["form"] == "caption":
            nll.setdefault("caption", []).append(r["nll"])
            continue
        for key in (f"{r['form']}/{r['qtype']}", r["form"], "all"):
            acc.setdefault(key, []).append(bool(r["correct"]))
        if "margin" in r:
            for key in (f"{r['form']}/{r['qtype']}", r["form"]):
                auc_rows.setdefault(key, []).append((r["margin"], r["label"]))
        if r.get("grade") is not None and r["qtype"] == "graded":
            g, base = int(r["grade"]), f"{r['form']}/{r['qtype']}"
            if g > 0:
                auc_rows.setdefault(f"{base}/full_vs_partial", []).append((r["margin"], g == 3))
            if g < 3:
                auc_rows.setdefault(f"{base}/partial_vs_none", []).append((r["margin"], g > 0))
    return {
        "accuracy": {k: float(np.mean(v)) for k, v in sorted(acc.items())},
        "count": {k: len(v) for k, v in sorted(acc.items())},
        "auc": {k: roc_auc([m for m, _ in v], [y for _, y in v]) for k, v in sorted(auc_rows.items())},
        "nll": {k: float(np.mean(v)) for k, v in nll.items()},
    }


class ProgressLog(L.Callback):
    """Log lines for long runs whose output goes to a file (DVC, nohup), where progress bars are
    silent: every `every` steps the running loss and speed, after each validation the held-out
    accuracy per prompt form."""

    def __init__(self, every: int = 100):
        self.every, self._loss, self._t0, self._step0 = int(every), None, None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        import time

        loss = float(outputs["loss"] if isinstance(outputs, Mapping) else outputs)
        self._loss = loss if self._loss is None else 0.98 * self._loss + 0.02 * loss
        if self._t0 is None:
            self._t0, self._step0 = time.perf_counter(), trainer.global_step
        if trainer.global_step % self.every == 0:
            rate = (trainer.global_step - self._step0) / max(time.perf_counter() - self._t0, 1e-9)
            log.info("pretrain step %d (epoch %d): loss %.4f, %.2f steps/s", trainer.global_step, trainer.current_epoch,
                     self._loss, rate)

    def on_validation_end(self, trainer, pl_module) -> None:
        acc = getattr(pl_module, "heldout", {}).get("accuracy", {})
        auc = getattr(pl_module, "heldout", {}).get("auc", {})
        forms = {k: round(v, 3) for k, v in acc.items() if "/" not in k}
        log.info("held-out after %d steps: accuracy %s; relevance AUC (rerank prompt) %s; %s", trainer.global_step, forms,
                 auc.get("rerank/relevance"), {k: round(v, 2) for k, v in acc.items() if k.startswith("short/")})
