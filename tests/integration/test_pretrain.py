"""The pretrain stage on a miniature corpus, and how the pipeline takes its weights (build_model):
sha256 checks with errors that name the file, the architecture check, determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from conftest import CONF, REPO, compose_cfg
from rankvideo.models.tiny import load_backbone
from rankvideo.stages import build_model, pretrain
from rankvideo.stages.build_model import PretrainedWeightsError, verify_pretrained


def _cfg(root: Path, *overrides: str):
    # One round unless a test gives its own rounds (the configured run has several).
    if not any(o.startswith("pretrain.continued=") for o in overrides):
        overrides = ("pretrain.continued=[]", *overrides)
    cfg = compose_cfg([
        "debug=tiny", f"paths.artifacts={root / 'artifacts'}", f"paths.experiments={root / 'experiments'}",
        f"paths.pretrained={root / 'pretrained'}",
        "pretrain.corpus.num_videos=8", "pretrain.corpus.num_heldout=2", "pretrain.corpus.video.seconds=2.0",
        "pretrain.corpus.num_workers=1", "pretrain.num_workers=0", "pretrain.threads=1", "pretrain.batch_size=4",
        "pretrain.heldout_per_video={short:2,question:1,rerank:2,caption:1}", *overrides,
    ])
    OmegaConf.resolve(cfg)
    return cfg


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    cfg = _cfg(root, "pretrain.fast_dev_run=true")
    result = pretrain.run(cfg)
    return root, cfg, result


def test_fast_dev_run_writes_a_loadable_backbone_with_its_record(pretrained):
    root, cfg, result = pretrained
    out = root / "pretrained"
    sums = dict(line.split("  ")[::-1] for line in (out / "SHA256SUMS").read_text().splitlines())
    assert {"model.safetensors", "tokenizer.json", "config.json", "pretrain_info.json", "build_info.json"} <= set(sums)
    assert {k.strip(): v for k, v in sums.items()} == result["sha256"]
    info = json.loads((out / "pretrain_info.json").read_text())
    assert info["steps"] == 1 and info["threads"] == 1 and info["device"]
    # The held-out questions were answered, per prompt form and question type.
    assert {"short", "question", "rerank"} <= set(info["heldout"]["accuracy"])
    assert info["heldout"]["count"]["short"] == 2 * 2 and "caption" in info["heldout"]["nll"]
    model, processor = load_backbone(out)
    assert model.config.text_config.hidden_size == cfg.model.arch.hidden_size
    # The tokenizer was trained on the pre-training corpus's text, not the benchmark's.
    assert json.loads((out / "build_info.json").read_text())["args"]["corpus_size"] > 0


def test_build_model_copies_the_checked_weights(pretrained, tmp_path):
    root, _, result = pretrained
    cfg = _cfg(root, f"paths.model_dir={tmp_path / 'model'}", "tracking.enabled=false")
    with open_dict(cfg):
        cfg.model.pretrained.sha256 = result["sha256"]
    build_model.run(cfg)
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == (root / "pretrained" / "model.safetensors").read_bytes()


def test_a_changed_file_is_refused_by_name(pretrained, tmp_path):
    root, cfg, result = pretrained
    copy = tmp_path / "weights"
    shutil.copytree(root / "pretrained", copy)
    arch = OmegaConf.to_container(cfg.model.arch)
    assert verify_pretrained(copy, result["sha256"], arch)["args"]["hidden_size"] == arch["hidden_size"]
    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(PretrainedWeightsError, match=r"weights/model\.safetensors: sha256 .* does not match"):
        verify_pretrained(copy, result["sha256"], arch)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(PretrainedWeightsError, match=r"tokenizer\.json: missing"):
        verify_pretrained(copy, {"tokenizer.json": result["sha256"]["tokenizer.json"]})
    with pytest.raises(PretrainedWeightsError, match="is not there"):
        verify_pretrained(tmp_path / "nowhere", result["sha256"])
    with pytest.raises(PretrainedWeightsError, match="sha256 is empty"):
        verify_pretrained(root / "pretrained", {})


def test_a_different_architecture_is_refused(pretrained):
    root, cfg, result = pretrained
    arch = {**OmegaConf.to_container(cfg.model.arch), "hidden_size": 128}
    with pytest.raises(PretrainedWeightsError, match="hidden_size: 64 shipped vs 128 configured.*dvc repro -f -s pretrain"):
        verify_pretrained(root / "pretrained", result["sha256"], arch)


def test_pretraining_is_deterministic(tmp_path):
    """Two runs of the same config give the same weights byte for byte (same machine, same threads)."""
    sums = []
    for i in range(2):
        cfg = _cfg(tmp_path / f"run{i}", "pretrain.epochs=1", "pretrain.steps_per_epoch=3", "tracking.enabled=false",
                   f"paths.pretrain_work={tmp_path / 'work'}" if i == 0 else f"paths.pretrain_work={tmp_path / 'work1'}")
        sums.append(pretrain.run(cfg)["sha256"])
    assert sums[0]["model.safetensors"] == sums[1]["model.safetensors"]
    assert sums[0]["tokenizer.json"] == sums[1]["tokenizer.json"]


def test_each_epoch_draws_the_batches_of_its_phase(tmp_path, caplog):
    """The data loader is rebuilt every epoch, so the curriculum moves on (a loader built once
    would repeat the first epoch's batches for the whole run)."""
    import logging

    cfg = _cfg(tmp_path, "pretrain.epochs=2", "pretrain.steps_per_epoch=2", "tracking.enabled=false",
               "pretrain.schedule=[{until: 0.5, forms: {short: 1}, max_frames: 2}, {until: 1.0, forms: {caption: 1}}]")
    with caplog.at_level(logging.INFO, logger="rankvideo.modules.pretraining"):
        pretrain.run(cfg)
    assert "pre-training epoch 0: prompt forms {'short': 1.0}" in caplog.text
    assert "pre-training epoch 1: prompt forms {'caption': 1.0}" in caplog.text


def test_a_cut_run_resumed_gives_the_weights_of_an_uncut_one(tmp_path, monkeypatch):
    """A pre-training killed after its first epoch's checkpoint and started again ends with the
    same weights, byte for byte, as one that ran through (what the shipped run relied on)."""
    from rankvideo.modules.pretraining import PretrainModule

    overrides = ("pretrain.epochs=2", "pretrain.steps_per_epoch=3", "tracking.enabled=false")
    whole = pretrain.run(_cfg(tmp_path / "whole", *overrides, f"paths.pretrain_work={tmp_path / 'w0'}"))

    cut_cfg = _cfg(tmp_path / "cut", *overrides, f"paths.pretrain_work={tmp_path / 'w1'}")
    step = PretrainModule.training_step

    def dies_in_the_second_epoch(self, batch, batch_idx):
        if self.current_epoch == 1:
            raise RuntimeError("killed")
        return step(self, batch, batch_idx)

    monkeypatch.setattr(PretrainModule, "training_step", dies_in_the_second_epoch)
    with pytest.raises(RuntimeError, match="killed"):
        pretrain.run(cut_cfg)
    assert not (tmp_path / "cut" / "pretrained").exists()
    trained = []

    def counted(self, batch, batch_idx):
        trained.append(self.current_epoch)
        return step(self, batch, batch_idx)

    monkeypatch.setattr(PretrainModule, "training_step", counted)
    resumed = pretrain.run(cut_cfg)
    assert trained == [1, 1, 1]  # only the second epoch was trained again
    assert resumed["steps"] == whole["steps"] == 6
    assert resumed["sha256"]["model.safetensors"] == whole["sha256"]["model.safetensors"]
    assert resumed["heldout"]["accuracy"] == whole["heldout"]["accuracy"]


def test_a_continued_round_starts_from_the_first_rounds_weights_without_training_it_again(tmp_path, monkeypatch):
    """`pretrain.continued` adds rounds of continued pre-training: the first round keeps the run
    folder (fingerprint) of a config without rounds, so a finished run is continued rather than
    repeated; each round exports its weights and the output holds the last round's."""
    from rankvideo.modules.pretraining import PretrainModule
    from rankvideo.stages.pretrain import _fingerprint

    work = f"paths.pretrain_work={tmp_path / 'work'}"
    base = ("pretrain.epochs=1", "pretrain.steps_per_epoch=2", "tracking.enabled=false", work)
    first = pretrain.run(_cfg(tmp_path / "one", *base))

    trained = []
    step = PretrainModule.training_step

    def counted(self, batch, batch_idx):
        trained.append(self.lr)
        return step(self, batch, batch_idx)

    monkeypatch.setattr(PretrainModule, "training_step", counted)
    more = "pretrain.continued=[{epochs: 1, steps_per_epoch: 3, lr: 0.0005, schedule: [{until: 1.0, forms: {rerank: 1}}]}]"
    cfg = _cfg(tmp_path / "two", *base, more)
    assert _fingerprint(cfg, 0) == _fingerprint(_cfg(tmp_path / "one", *base))
    assert _fingerprint(cfg, 1) != _fingerprint(cfg, 0)
    both = pretrain.run(cfg)
    assert trained == [0.0005] * 3  # only the new round trained; the first was taken as it was
    assert both["steps"] == 2 + 3 and [r["steps"] for r in both["rounds"]] == [2, 3]
    assert both["sha256"]["model.safetensors"] != first["sha256"]["model.safetensors"]
    assert "round_info.json" not in both["sha256"]
    info = json.loads((tmp_path / "two" / "pretrained" / "pretrain_info.json").read_text())
    assert [r["round"] for r in info["rounds"]] == [1, 2] and info["heldout"] == info["rounds"][1]["heldout"]
    # The first round's exported weights are the single-round run's output, byte for byte.
    round1 = tmp_path / "work" / _fingerprint(cfg, 0) / "model" / "model.safetensors"
    assert round1.read_bytes() == (tmp_path / "one" / "pretrained" / "model.safetensors").read_bytes()


def test_a_round_is_taken_from_an_export_with_its_fingerprint_and_a_changed_export_is_refused(tmp_path, monkeypatch):
    """On a fresh clone the first round's run folder is missing but its export ships (pretrained/):
    `pretrain.reuse` lists such exports, and a round with an export's fingerprint takes its weights
    from it (checked against its SHA256SUMS) instead of training again."""
    from rankvideo.modules.pretraining import PretrainModule

    base = ("pretrain.epochs=1", "pretrain.steps_per_epoch=2", "tracking.enabled=false")
    shipped = tmp_path / "one" / "pretrained"
    pretrain.run(_cfg(tmp_path / "one", *base, f"paths.pretrain_work={tmp_path / 'work-one'}"))

    trained = []
    step = PretrainModule.training_step
    monkeypatch.setattr(PretrainModule, "training_step", lambda self, b, i: trained.append(1) or step(self, b, i))
    more = "pretrain.continued=[{epochs: 1, steps_per_epoch: 3, schedule: [{until: 1.0, forms: {rerank: 1}}]}]"
    args = (*base, more, f"pretrain.reuse=[{shipped}]", f"paths.pretrain_work={tmp_path / 'work-two'}")
    out = pretrain.run(_cfg(tmp_path / "two", *args))
    assert len(trained) == 3 and [r["steps"] for r in out["rounds"]] == [2, 3]
    assert out["rounds"][0]["adopted_from"] == str(shipped)
    from rankvideo.stages.pretrain import _fingerprint

    adopted = tmp_path / "work-two" / _fingerprint(_cfg(tmp_path / "two", *args), 0) / "model"
    assert (adopted / "model.safetensors").read_bytes() == (shipped / "model.safetensors").read_bytes()

    shutil.rmtree(tmp_path / "work-two")
    with (shipped / "config.json").open("a") as fh:
        fh.write(" ")
    with pytest.raises(ValueError, match=r"pretrained: files differ from its SHA256SUMS \(\['config.json'\]\)"):
        pretrain.run(_cfg(tmp_path / "two", *args))


def test_a_shipped_last_round_is_taken_without_training_the_rounds_before_it(tmp_path, monkeypatch):
    """The shipped backbone is the export of the last of several rounds. On a fresh clone (no run
    folders) the same plan takes that export for its last round and trains none of the earlier
    ones; the output lists every round, and a further round continues from it."""
    from rankvideo.modules.pretraining import PretrainModule

    base = ("pretrain.epochs=1", "pretrain.steps_per_epoch=2", "tracking.enabled=false")
    more = "pretrain.continued=[{epochs: 1, steps_per_epoch: 3, schedule: [{until: 1.0, forms: {rerank: 1}}]}]"
    shipped = tmp_path / "one" / "pretrained"
    first = pretrain.run(_cfg(tmp_path / "one", *base, more, f"paths.pretrain_work={tmp_path / 'work-one'}"))

    trained = []
    step = PretrainModule.training_step
    monkeypatch.setattr(PretrainModule, "training_step", lambda self, b, i: trained.append(1) or step(self, b, i))
    args = (*base, more, f"pretrain.reuse=[{shipped}]", f"paths.pretrain_work={tmp_path / 'work-two'}")
    again = pretrain.run(_cfg(tmp_path / "two", *args))
    assert trained == []
    assert again["sha256"]["model.safetensors"] == first["sha256"]["model.safetensors"]
    assert [r["steps"] for r in again["rounds"]] == [2, 3] and again["steps"] == 5
    # Run again in the same folders: still nothing to train, the same record.
    assert pretrain.run(_cfg(tmp_path / "two", *args))["rounds"] == again["rounds"] and trained == []
    # A third round trains only itself, from the shipped weights.
    third = more[:-1] + ", {epochs: 1, steps_per_epoch: 1, schedule: [{until: 1.0, forms: {short: 1}}]}]"
    out = pretrain.run(_cfg(tmp_path / "three", *base, third, f"pretrain.reuse=[{shipped}]",
                            f"paths.pretrain_work={tmp_path / 'work-two'}"))
    assert len(trained) == 1 and [r["steps"] for r in out["rounds"]] == [2, 3, 1]


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("pretrain_*.yaml")))
def test_a_pretraining_experiment_continues_the_shipped_rounds(experiment):
    """Every round of a pre-training experiment but its last is a shipped round, setting for setting:
    the experiment trains its own round from the shipped export instead of every round again."""
    from rankvideo.modules.pretraining import parse_rounds
    from rankvideo.stages.pretrain import _fingerprint

    shipped = [r["fingerprint"] for r in json.loads((REPO / "pretrained" / "tiny_qwen3_vl" / "pretrain_info.json").read_text())["rounds"]]
    cfg = compose_cfg([f"+experiment={experiment}"])
    n = len(parse_rounds(OmegaConf.to_container(cfg.pretrain, resolve=True)))
    assert 1 < n <= len(shipped) + 1
    assert [_fingerprint(cfg, k) for k in range(n - 1)] == shipped[: n - 1]


def test_round_settings_are_checked_by_name():
    from rankvideo.utils.validate import ConfigError, validate_config

    cfg = compose_cfg(["debug=tiny", "pretrain.continued=[{epochs: 1, learning_rate: 0.1}]"])
    with pytest.raises(ConfigError, match=r"pretrain.continued\[0\]: unknown keys \['learning_rate'\]"):
        validate_config(cfg, stage="pretrain")
    cfg = compose_cfg(["debug=tiny", "pretrain.continued=[{epochs: 0}]"])
    with pytest.raises(ConfigError, match=r"pretrain.continued\[0\].epochs must be >= 1"):
        validate_config(cfg, stage="pretrain")
    cfg = compose_cfg(["debug=tiny", "pretrain.continued=[{grow_layers: -1}]"])
    with pytest.raises(ConfigError, match=r"pretrain.continued\[0\].grow_layers must be an integer >= 0, got -1"):
        validate_config(cfg, stage="pretrain")
    cfg = compose_cfg(["debug=tiny", "pretrain.continued=[{widen_vision: 0}]"])
    with pytest.raises(ConfigError, match=r"pretrain.continued\[0\].widen_vision must be an integer >= 1, got 0"):
        validate_config(cfg, stage="pretrain")
    cfg = compose_cfg(["debug=tiny", "+pretrain.extra_rounds=[{epochs: 2}, {lr: 0}]"])
    with pytest.raises(ConfigError, match=r"pretrain.extra_rounds\[1\].lr must be > 0"):
        validate_config(cfg, stage="pretrain")


def test_extra_rounds_are_the_same_rounds_as_continued_ones_appended():
    """An experiment's `extra_rounds` train and hash exactly as the same rounds appended to
    `pretrain.continued` would: the configured rounds keep their folders and the shipped export."""
    from rankvideo.modules.pretraining import parse_rounds
    from rankvideo.stages.pretrain import _fingerprint

    extra = "[{epochs: 2, lr: 0.0005}, {grow_layers: 1, epochs: 1}]"
    cfg = compose_cfg([f"+pretrain.extra_rounds={extra}"])
    configured = OmegaConf.to_container(cfg.pretrain.continued)
    appended = compose_cfg()
    appended.pretrain.continued = configured + OmegaConf.to_container(OmegaConf.create(extra))
    rounds = parse_rounds(OmegaConf.to_container(cfg.pretrain, resolve=True))
    assert len(rounds) == len(configured) + 3
    assert rounds == parse_rounds(OmegaConf.to_container(appended.pretrain, resolve=True))
    assert [_fingerprint(cfg, k) for k in range(len(rounds))] == [_fingerprint(appended, k) for k in range(len(rounds))]
    # The configured rounds hash as they do without the extra ones.
    plain = compose_cfg()
    assert [_fingerprint(cfg, k) for k in range(len(configured) + 1)] == [_fingerprint(plain, k) for k in range(len(configured) + 1)]


def test_a_round_that_grows_the_language_model_and_widens_the_tower(tmp_path):
    """A round with grow_layers appends decoder layers, and one with widen_vision widens the vision
    tower, before it trains; the rounds after it keep the sizes without changing them again. The
    export's config has the grown depth and width, build_info keeps the first round's arguments (so
    model.arch still matches) and records the layers added and the widening."""
    base = ("pretrain.epochs=1", "pretrain.steps_per_epoch=1", "tracking.enabled=false",
            f"paths.pretrain_work={tmp_path / 'work'}")
    rounds = ("pretrain.continued=[{grow_layers: 1, widen_vision: 2, epochs: 1, steps_per_epoch: 2, schedule: [{until: 1.0, forms: "
              "{rerank: 1}}]}, {epochs: 1, steps_per_epoch: 1, schedule: [{until: 1.0, forms: {short: 1}}]}]")
    cfg = _cfg(tmp_path, *base, rounds)
    out = pretrain.run(cfg)
    assert [r["steps"] for r in out["rounds"]] == [1, 2, 1]
    folder = tmp_path / "pretrained"
    config = json.loads((folder / "config.json").read_text())
    assert config["text_config"]["num_hidden_layers"] == cfg.model.arch.num_layers + 1
    build = json.loads((folder / "build_info.json").read_text())
    assert build["grown_layers"] == 1 and build["args"]["num_layers"] == cfg.model.arch.num_layers
    assert build["config"]["text_config"]["num_hidden_layers"] == cfg.model.arch.num_layers + 1
    assert build["vision_widened"] == 2 and build["args"]["vision_hidden"] == cfg.model.arch.vision_hidden
    assert config["vision_config"]["hidden_size"] == 2 * cfg.model.arch.vision_hidden
    verify_pretrained(folder, out["sha256"], dict(OmegaConf.to_container(cfg.model.arch, resolve=True)))
    model, _ = load_backbone(folder)
    assert len(model.model.language_model.layers) == cfg.model.arch.num_layers + 1
    assert model.model.visual.blocks[0].attn.qkv.in_features == 2 * cfg.model.arch.vision_hidden
