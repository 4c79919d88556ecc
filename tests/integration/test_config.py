"""conf/ is the single source of truth: params.yaml, DVC's composition and Hydra's agree, and each
DVC stage sees exactly the params it declares."""

from __future__ import annotations

import yaml
import pytest
from dvc.utils.hydra import compose_and_dump
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import CONF, REPO, compose_cfg


def _dvc_compose(tmp_path, overrides):
    out = tmp_path / "params.yaml"
    compose_and_dump(str(out), str(CONF), None, "config", "", overrides)
    return yaml.safe_load(out.read_text())


def test_committed_params_yaml_is_the_composition_of_conf(tmp_path):
    committed = yaml.safe_load((REPO / "params.yaml").read_text())
    assert committed == _dvc_compose(tmp_path, []), "params.yaml is stale: run `python src/compose_params.py` (or `dvc repro compose`)"


@pytest.mark.parametrize("overrides", [[], ["synthesis=caption_only"], ["retrieval.k1=0.9", "debug=tiny"]])
def test_hydra_cli_composition_equals_dvc_composition(tmp_path, overrides):
    hydra_cfg = OmegaConf.to_container(compose_cfg(overrides), resolve=True)
    assert hydra_cfg == _dvc_compose(tmp_path, overrides)


def test_group_options_carry_their_name():
    cfg = compose_cfg(["synthesis=ocr_only"])
    assert cfg.synthesis.name == "ocr_only"
    assert cfg.synthesis.variants == {"caption": 0.0, "all": 0.0, "ocr": 1.0, "asr": 0.0, "metadata": 0.0}
    for group in ("paths", "data", "synthesis", "retrieval", "rerank", "eval", "tracking"):
        assert "name" in cfg[group], f"conf/{group}: every option needs a `name:` (DVC's composition drops the hydra node)"


def test_every_declared_param_exists_and_stages_are_struct(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert part in node, f"dvc.yaml stage {name} declares param {key}, missing from params.yaml"
                node = node[part]


def test_stage_reading_an_undeclared_param_fails_loudly():
    cfg = OmegaConf.create({"paths": {"benchmark": "x"}})
    OmegaConf.set_struct(cfg, True)
    with pytest.raises(Exception, match="retrieval"):
        _ = cfg.retrieval


def test_paper_presets_compose_to_the_papers_settings():
    t1 = compose_cfg(["+experiment=paper_table1"])
    assert (t1.data.name, t1.retrieval.name, t1.model.name, t1.peft.name, t1.curriculum.name, t1.trainer.name) == \
        ("multivent2", "external", "qwen3_vl_8b", "qlora", "paper", "ddp")
    # QLoRA as the official code: LoRA r16 on a 4-bit NF4 base, bf16 compute, double quantization.
    assert (t1.peft.quantize_4bit, t1.peft.quant_type, t1.peft.compute_dtype, t1.peft.double_quant) == \
        (True, "nf4", "bfloat16", True)
    # A reasoning LM teacher with the paper's mining thresholds (not MiniLM's calibrated scale).
    assert t1.teacher.name == "hf" and t1.teacher.max_new_tokens > 0
    assert (t1.teacher.mining.trusted_max, t1.teacher.mining.suspect_min) == (-6.0, -8.0)
    assert list(t1.teacher.evidence_fields) == ["caption", "asr"] and t1.teacher.conventions == "project"
    # The official code's schedule on top: one override.
    oc = compose_cfg(["+experiment=paper_table1", "curriculum=official_code", "loss=official_code"])
    assert (oc.curriculum.name, oc.peft.name, oc.teacher.name, oc.loss.pointwise) == ("official_code", "qlora", "hf", 1.0)
    s1, s2 = oc.curriculum.stage1, oc.curriculum.stage2
    assert (s1.epochs, s1.batch_size, s1.accumulate_grad_batches, s1.lr, s1.max_frames) == (2, 1, 16, 1e-5, 32)
    assert (s2.epochs, s2.batch_size, s2.accumulate_grad_batches, s2.lr, s2.max_frames) == (2, 1, 8, 1e-5, 24)
    assert (s2.num_negatives, s2.negatives_with_replacement, s2.warmup_ratio, s2.weight_decay) == (1, True, 0.03, 0.0)
    assert t1.retrieval.path.endswith("ranking_AV_OmniEmbed.json") and t1.retrieval.depth == 1000 and t1.rerank.depth == 100
    assert (t1.loss.pairwise, t1.loss.distill, t1.loss.pointwise) == (1.0, 5.0, 0.5)
    assert t1.data.positive_min_grade == 1  # binary train judgments
    t2 = compose_cfg(["+experiment=paper_table2", "retrieval.path=run_clip.trec"])
    assert t2.retrieval.path == "run_clip.trec" and t2.model.name == "qwen3_vl_8b"
    # Table 7: the three loss variants the preset sweeps.
    weights = {name: (compose_cfg([f"loss={name}"]).loss.distill, compose_cfg([f"loss={name}"]).loss.pointwise)
               for name in ("pairwise_only", "pairwise_pointwise", "paper")}
    assert weights == {"pairwise_only": (0.0, 0.0), "pairwise_pointwise": (0.0, 0.5), "paper": (5.0, 0.5)}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        t7 = compose(config_name="config", overrides=["+experiment=paper_table7"], return_hydra_config=True)
    assert t7.hydra.sweeper.params == {"loss": "pairwise_only,pairwise_pointwise,paper"}
