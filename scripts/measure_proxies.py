"""How good are tool-made text proxies on the embedded world? Word error rate, OCR accuracy and
captions against the ground truth.

Builds a small narrated embedded benchmark (`data.narration.enabled=true`: each clip speaks its
transcript; clips keep their on-screen word), runs the `proxies` extraction (PocketSphinx,
Tesseract and, with `--captioner tiny`, the pre-trained tiny backbone) over its first `--clips`
videos and compares, per proxy, the tool's text and the template's text with the truth:

- ASR: word error rate against the narration text (corpus WER: all edits over all reference words);
- OCR: of the clips with an on-screen word, the share whose OCR output contains it as a whole word;
  of the clips without one, the share with any OCR text (false readings);
- captions: of the clips whose background shows the kind of event, the share whose caption names
  it; of the clips showing the place's emblem, the share naming the place; of the clips with an
  on-screen word, the share naming the word.

    python scripts/measure_proxies.py --clips 40
    python scripts/measure_proxies.py --clips 40 --captioner tiny --out experiments/measure_proxies

Needs `apt-get install flite tesseract-ocr` and `pip install pocketsphinx pytesseract`. Prints a
Markdown table and writes `<out>/measure_proxies.json`; the measured numbers are in
docs/findings.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=40, help="videos to run the tools on (the first by doc id)")
    p.add_argument("--captioner", choices=["none", "tiny"], default="none", help="also caption with the tiny backbone")
    p.add_argument("--engine", choices=["flite", "espeak-ng"], default="flite", help="the narration's speech synthesiser")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", default="experiments/measure_proxies", help="benchmark, proxies and results go here")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rankvideo.data.synthetic.build import build_benchmark
    from rankvideo.proxies.extract import extract_proxies
    from rankvideo.proxies.metrics import corpus_wer, ocr_hit, word_error_rate, words
    from rankvideo.stages.synthesize import benchmark_config

    out = Path(args.out)
    per_event = 8
    events = max(2, math.ceil(args.clips / per_event))
    overrides = [f"seed={args.seed}", "data.narration.enabled=true", f"data.narration.engine={args.engine}",
                 f"data.num_events={events}", f"data.videos_per_event={per_event}", f"data.num_queries={events * 4}",
                 f"proxies/captioner={args.captioner}", "proxies/asr=pocketsphinx", "proxies/ocr=tesseract"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    t0 = time.perf_counter()
    build_benchmark(benchmark_config(cfg), out / "benchmark")
    build_s = time.perf_counter() - t0
    records = [json.loads(line) for line in (out / "benchmark" / "corpus.jsonl").read_text().splitlines()]
    records = sorted(records, key=lambda r: r["doc_id"])[: args.clips]
    videos = [(r["doc_id"], str(out / "benchmark" / r["video"])) for r in records]
    pcfg = OmegaConf.to_container(cfg.proxies, resolve=True)
    t0 = time.perf_counter()
    info = extract_proxies(videos, out / "proxies", pcfg, pretrained=str(ROOT / cfg.paths.pretrained))
    tools_s = time.perf_counter() - t0

    def read(name):
        path = out / "proxies" / name
        return {r["doc_id"]: r["text"] for r in map(json.loads, path.read_text().splitlines())} if path.exists() else {}

    asr, ocr, cap = read("asr.jsonl"), read("ocr.jsonl"), read("captions.jsonl")
    done = [r for r in records if r["doc_id"] in asr]
    with_word = [r for r in done if (r["truth"]["scene"].get("text") or {}).get("word")]
    without_word = [r for r in done if r not in with_word]
    textured = [r for r in done if r["truth"]["scene"].get("kind_index", -1) >= 0]
    emblem = [r for r in done if r["truth"]["scene"].get("place_index", -1) >= 0]

    def word_of(r):
        return r["truth"]["scene"]["text"]["word"]

    def names_kind(text, kind):
        return set(words(kind)) <= set(words(text))

    rows = {
        "clips": len(done),
        "asr_wer_tools": corpus_wer((r["asr"], asr[r["doc_id"]]) for r in done),
        "asr_clips_wer_below_0.5": sum(word_error_rate(r["asr"], asr[r["doc_id"]]) < 0.5 for r in done) / max(1, len(done)),
        "asr_wer_templates": 0.0,  # the template is the narration's text
        "ocr_clips_with_word": len(with_word),
        "ocr_accuracy_tools": sum(ocr_hit(word_of(r), ocr[r["doc_id"]]) for r in with_word) / max(1, len(with_word)),
        "ocr_accuracy_templates": sum(r["ocr"] == word_of(r) for r in with_word) / max(1, len(with_word)),
        "ocr_false_readings_tools": sum(bool(ocr[r["doc_id"]].strip()) for r in without_word) / max(1, len(without_word)),
        "caption_kind_named_templates": sum(names_kind(r["caption"], r["truth"]["kind"]) for r in textured) / max(1, len(textured)),
        "caption_place_named_templates": sum(names_kind(r["caption"], r["truth"]["place"]) for r in emblem) / max(1, len(emblem)),
        "build_seconds": round(build_s, 1),
        "tools_seconds": round(tools_s, 1),
        "skipped": info["num_skipped"],
    }
    if cap:
        rows["caption_kind_named_tools"] = sum(names_kind(cap[r["doc_id"]], r["truth"]["kind"]) for r in textured) / max(1, len(textured))
        rows["caption_place_named_tools"] = sum(names_kind(cap[r["doc_id"]], r["truth"]["place"]) for r in emblem) / max(1, len(emblem))
        rows["caption_word_named_tools"] = sum(ocr_hit(word_of(r), cap[r["doc_id"]]) for r in with_word) / max(1, len(with_word))
    (out / "measure_proxies.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\n{len(done)} narrated clips ({args.engine}), seed {args.seed}; tools {tools_s:.0f} s, build {build_s:.0f} s\n")
    print("| proxy | measure | tools | templates |\n|---|---|---|---|")
    print(f"| ASR (PocketSphinx) | corpus WER vs the narration | {rows['asr_wer_tools']:.3f} | 0 |")
    print(f"| ASR (PocketSphinx) | clips with WER < 0.5 | {rows['asr_clips_wer_below_0.5']:.3f} | 1 |")
    print(f"| OCR (Tesseract) | on-screen word read ({len(with_word)} clips) | {rows['ocr_accuracy_tools']:.3f} | "
          f"{rows['ocr_accuracy_templates']:.3f} |")
    print(f"| OCR (Tesseract) | text read where none is shown ({len(without_word)} clips) | "
          f"{rows['ocr_false_readings_tools']:.3f} | 0 |")
    if cap:
        print(f"| caption (tiny backbone) | names the kind of event ({len(textured)} clips) | "
              f"{rows['caption_kind_named_tools']:.3f} | {rows['caption_kind_named_templates']:.3f} |")
        print(f"| caption (tiny backbone) | names the place (emblem shown, {len(emblem)} clips) | "
              f"{rows['caption_place_named_tools']:.3f} | {rows['caption_place_named_templates']:.3f} |")
        print(f"| caption (tiny backbone) | names the on-screen word | {rows['caption_word_named_tools']:.3f} | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
