"""DVC stage `compose`: write params.yaml, the composition of conf/, for `dvc repro`.

conf/ is the only place people edit. `dvc exp run` composes params.yaml itself (DVC's Hydra
integration, with `-S` overrides applied); plain `dvc repro` does not, so this stage does it with
the same composer DVC uses. Under `dvc exp run` (DVC sets DVC_EXP_NAME) it leaves params.yaml alone
so that `-S` overrides survive.
"""

import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"


def main() -> int:
    if os.environ.get("DVC_EXP_NAME"):
        print("compose: dvc exp run composed params.yaml (with its -S overrides); leaving it as is")
        return 0
    from dvc.utils.hydra import compose_and_dump

    before = yaml.safe_load(PARAMS.read_text()) if PARAMS.exists() else {}
    compose_and_dump(str(PARAMS), str(ROOT / "conf"), None, "config", "", [])
    after = yaml.safe_load(PARAMS.read_text())
    print(f"compose: wrote {PARAMS.name} from conf/")
    # dvc.yaml templates paths from params.yaml (${data.source}, ${paths.*}) before any stage
    # runs, so a switch of those values takes effect on the next `dvc repro`.
    moved = [k for k in ("data.source", "retrieval.source", "paths") if _get(before, k) != _get(after, k)]
    if before and moved:
        print(f"compose: {', '.join(moved)} changed: run `dvc repro` once more so the stages use the new paths",
              file=sys.stderr)
    return 0


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part, {}) if isinstance(d, dict) else {}
    return d


if __name__ == "__main__":
    sys.exit(main())
