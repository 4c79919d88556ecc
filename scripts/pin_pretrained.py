"""Pin the shipped pre-trained weights: copy the sha256 of every file in a pretrained folder's
SHA256SUMS (pretrain_info.json aside) into a model config's `pretrained.sha256` map, in place.

    python scripts/pin_pretrained.py [--folder pretrained/tiny_qwen3_vl] [--config conf/model/tiny_qwen3_vl.yaml]

Run it after `dvc repro pretrain` (or `python -m rankvideo.stages pretrain`) wrote new weights;
build_model refuses the new files until they are pinned.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

EXCLUDED = {"pretrain_info.json"}  # the run's own record (timings), not read by the model


def read_sums(folder: Path) -> dict[str, str]:
    sums = {}
    path = folder / "SHA256SUMS"
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        m = re.fullmatch(r"([0-9a-f]{64})\s+\*?(\S+)", line.strip())
        if not m:
            sys.exit(f"{path} line {lineno}: not '<sha256>  <file>': {line!r}")
        if m.group(2) not in EXCLUDED:
            sums[m.group(2)] = m.group(1)
    return sums


def pin(config: Path, sums: dict[str, str]) -> str:
    """The config's text with its `sha256:` block (the lines indented under it) replaced."""
    lines = config.read_text().splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.strip() == "sha256:"), None)
    if start is None:
        sys.exit(f"{config}: no 'sha256:' block to pin")
    indent = len(lines[start]) - len(lines[start].lstrip()) + 2
    end = start + 1
    while end < len(lines) and lines[end].startswith(" " * indent) and lines[end].strip():
        end += 1
    block = [f"{' ' * indent}{name}: {digest}\n" for name, digest in sorted(sums.items())]
    return "".join(lines[:start + 1] + block + lines[end:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=Path("pretrained/tiny_qwen3_vl"))
    ap.add_argument("--config", type=Path, default=Path("conf/model/tiny_qwen3_vl.yaml"))
    args = ap.parse_args()
    text = pin(args.config, read_sums(args.folder))
    args.config.write_text(text)
    print(f"pinned {len(read_sums(args.folder))} files of {args.folder} in {args.config}")


if __name__ == "__main__":
    main()
