"""scripts/pin_pretrained.py rewrites exactly the config's sha256 block from SHA256SUMS."""

from __future__ import annotations

import subprocess
import sys

import yaml

from conftest import REPO


def test_pin_rewrites_the_sha256_block_only(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    (folder / "SHA256SUMS").write_text(f"{a}  model.safetensors\n{b}  config.json\n{c}  pretrain_info.json\n")
    config = tmp_path / "model.yaml"
    original = (REPO / "conf" / "model" / "tiny_qwen3_vl.yaml").read_text()
    config.write_text(original)
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "pin_pretrained.py"), "--folder", str(folder),
                        "--config", str(config)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    new, old = yaml.safe_load(config.read_text()), yaml.safe_load(original)
    assert new["pretrained"]["sha256"] == {"config.json": b, "model.safetensors": a}
    new["pretrained"].pop("sha256"), old["pretrained"].pop("sha256")
    assert new == old  # everything else untouched
    assert config.read_text().count("\n#") == original.count("\n#")  # comments kept
