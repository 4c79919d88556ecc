"""Config validation before any work: the key and the value are named, and nothing has run yet."""

from __future__ import annotations

import pytest

from conftest import compose_cfg
from rankvideo.stages import stage_fn
from rankvideo.utils.validate import ConfigError, validate_config


def test_the_shipped_configs_are_valid():
    for overrides in ([], ["debug=tiny"], ["curriculum=paper"], ["loss=official_code"], ["model=tiny_qwen3_vl_scratch"],
                      ["model=rankvideo_official"], ["prompt=official_training"], ["curriculum=official_code"],
                      ["+experiment=paper_table1"], ["+experiment=paper_table1", "curriculum=official_code",
                                                     "teacher.conventions=official", "eval.average=ranked"]):
        validate_config(compose_cfg(overrides))


@pytest.mark.parametrize("override, message", [
    ("curriculum.stage2.epochs=0", r"curriculum.stage2.epochs=0: must be an integer >= 1"),
    ("curriculum.stage2.epochs=-1", r"curriculum.stage2.epochs=-1: must be an integer >= 1"),
    ("curriculum.stage1.batch_size=0", r"curriculum.stage1.batch_size=0"),
    ("curriculum.stage1.lr=0", r"curriculum.stage1.lr=0"),
    ("rerank.depth=0", r"rerank.depth=0"),
    ("rerank.fps=-2", r"rerank.fps=-2"),
    ("curriculum.stage2.max_frames=0", r"curriculum.stage2.max_frames=0"),
    ("loss.pairwise=abc", r"loss.pairwise='abc': must be a number"),
    ("loss.pairwise=-1", r"weight pairwise must be a finite number >= 0, got -1"),
    ("loss.tau_pair=0", r"temperature tau_pair"),
    ("pretrain.epochs=0", r"pretrain.epochs=0"),
    ("pretrain.schedule.0.until=2.0", r"pretrain.schedule"),
    ("prompt.name=officiel", r"prompt.name='officiel': must be one of official_inference, official_training, paper"),
    ("+curriculum.stage2.accumulate_grad_batches=0", r"curriculum.stage2.accumulate_grad_batches=0: must be an integer >= 1"),
    ("+curriculum.stage1.accumulate_grad_batches=2.5", r"curriculum.stage1.accumulate_grad_batches=2.5"),
    ("+curriculum.stage2.negatives_with_replacement=yes",
     r"curriculum.stage2.negatives_with_replacement='yes': must be true or false"),
    ("eval.average=mean", r"eval.average='mean': must be one of all_judged, ranked"),
    ("+teacher.conventions=official", r"teacher.conventions=official: only the hf teacher reads them, not teacher=minilm"),
])
def test_a_value_out_of_range_is_named(override, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(compose_cfg([override]))


def test_a_stage_refuses_a_bad_config_before_doing_anything(tmp_path):
    cfg = compose_cfg(["curriculum.stage2.epochs=0", f"paths.artifacts={tmp_path / 'a'}", "tracking.enabled=false"])
    with pytest.raises(ConfigError, match="curriculum.stage2.epochs=0"):
        stage_fn("train")(cfg)
    assert not (tmp_path / "a").exists()


def test_the_released_model_is_scored_with_the_official_inference_prompt():
    assert compose_cfg(["model=rankvideo_official"]).prompt.name == "official_inference"
    assert compose_cfg(["model=rankvideo_official", "prompt=paper"]).prompt.name == "paper"
    assert compose_cfg([]).prompt.name == "paper"


@pytest.mark.parametrize("overrides, message", [
    (["peft=qlora", "trainer=fsdp"], r"peft=qlora with trainer=fsdp"),
    (["+experiment=paper_table1", "trainer=fsdp"], r"peft=qlora with trainer=fsdp"),
    (["peft=qlora", "peft.quant_type=int4"], r"peft.quant_type='int4': must be one of nf4, fp4"),
    (["teacher=hf", "teacher.conventions=offical"], r"teacher.conventions='offical': must be one of project, official"),
])
def test_preset_choices_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(compose_cfg(overrides))
