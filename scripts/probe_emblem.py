"""Does a backbone's vision tower carry the place's emblem to the language model?

The emblem is a 3x3 bit pattern in the top-left corner of a clip (`scenes.emblem_bits`). For the
first `--videos` clips of the pre-training corpus that show one, this fits a softmax regression
from features of the clip's first two frames (one temporal patch) to the place, on the first 75%
of them, and prints its accuracy on the rest, for:

- tokens: the vision tower's output (what the language model reads) at the 2x2 merged tokens of
          the top-left corner, concatenated;
- pixels: the raw top-left 24x24 pixels of the first frame (what any reader could get).

If `tokens` reaches `pixels`, the place is in what the language model reads, and a backbone that
still cannot tell the place loses it in the language model.

    python scripts/probe_emblem.py --model pretrained/tiny_qwen3_vl
    python scripts/probe_emblem.py --model pretrained/tiny_qwen3_vl,experiments/pretrain_place

Needs the pre-training corpus (`python src/pretrain.py` builds it): by default the configured one
(conf/pretrain), or `--corpus`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from rankvideo.data.synthetic.pretraining import PretrainCorpus  # noqa: E402
from rankvideo.data.synthetic.world import PLACES  # noqa: E402
from rankvideo.models.tiny import load_backbone  # noqa: E402
from rankvideo.stages.pretrain import corpus_dir  # noqa: E402

CORNER = 24  # pixels: the emblem lies within the top-left 20 of a 96-pixel frame


def fit_accuracy(x: np.ndarray, y: np.ndarray, n_classes: int, train_fraction: float = 0.75, steps: int = 300) -> float:
    """Held-out accuracy of an L2-regularised softmax regression (standardised features, L-BFGS)."""
    n_train = int(len(y) * train_fraction)
    x = torch.as_tensor(x, dtype=torch.float64)
    mean, std = x[:n_train].mean(0), x[:n_train].std(0).clamp_min(1e-6)
    x = (x - mean) / std
    y = torch.as_tensor(y)
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x[:n_train] @ w + b, y[:n_train]) + 1e-3 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((x[n_train:] @ w + b).argmax(1) == y[n_train:]).double().mean())


def corner_tokens(model, processor, clips: list[np.ndarray]) -> np.ndarray:
    """The vision tower's output at the merged tokens covering the top-left corner, per clip."""
    out = processor.video_processor(videos=clips, return_tensors="pt", do_sample_frames=False)
    t, h, w = (int(v) for v in out["video_grid_thw"][0])
    merge = processor.video_processor.merge_size
    with torch.no_grad():
        emb = model.model.visual(out["pixel_values_videos"], grid_thw=out["video_grid_thw"])
    emb = getattr(emb, "pooler_output", emb)
    emb = emb[0] if isinstance(emb, tuple) else emb
    per_clip = emb.reshape(len(clips), t, h // merge, w // merge, -1)
    return per_clip[:, 0, :2, :2].reshape(len(clips), -1).float().numpy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="backbone folder(s), comma-separated")
    ap.add_argument("--corpus", default=None, help="a built pre-training corpus folder (default: the configured one)")
    ap.add_argument("--videos", type=int, default=1600, help="clips with an emblem to use")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.corpus is None:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            args.corpus = ROOT / corpus_dir(compose(config_name="config"))
    corpus = PretrainCorpus(args.corpus)
    index = [i for i in corpus.train_indices if corpus.videos[i].emblem_shown][: args.videos]
    if len(index) < 40:
        raise SystemExit(f"{args.corpus}: only {len(index)} clips with an emblem")
    places = np.array([PLACES.index(corpus.videos[i].place) for i in index])
    pixels = np.stack([np.asarray(corpus.frames[i][0][:CORNER, :CORNER], dtype=np.float64).reshape(-1) / 255 for i in index])
    print(f"{len(index)} clips with an emblem from {args.corpus}; {len(PLACES)} places (chance {1 / len(PLACES):.3f})")
    print(f"  pixels  held-out place accuracy {fit_accuracy(pixels, places, len(PLACES)):.3f}")
    for path in args.model.split(","):
        model, processor = load_backbone(path)
        feats = np.concatenate([corner_tokens(model, processor, [np.asarray(corpus.frames[i][:2]) for i in index[s : s + 64]])
                                for s in range(0, len(index), 64)])
        print(f"  tokens  held-out place accuracy {fit_accuracy(feats, places, len(PLACES)):.3f}  ({path})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
