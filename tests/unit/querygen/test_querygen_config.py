"""The generator group and synthesis.queries: defaults that leave the pipeline as it was, checks."""

import pytest

from conftest import compose_cfg
from rankvideo.stages.synthesize import benchmark_config
from rankvideo.utils.validate import ConfigError, validate_config


def test_defaults_keep_templated_queries_and_the_builder_input():
    cfg = compose_cfg([])
    assert cfg.synthesis.queries == "templates" and cfg.generator.name == "smollm2"
    # `queries` is not a builder field: the benchmark (and its manifest's config) is unchanged
    assert "queries" not in benchmark_config(cfg).__dict__
    assert benchmark_config(cfg) == benchmark_config(compose_cfg(["synthesis.queries=generator"]))


@pytest.mark.parametrize("override, message", [
    ("synthesis.queries=llm", "synthesis.queries='llm': must be one of templates, generator"),
    ("generator.max_new_tokens=0", "generator.max_new_tokens=0: must be an integer >= 1"),
    ("generator.do_sample=maybe", "generator.do_sample='maybe': must be true or false"),
    ("generator.parse.max_repeats=1", "generator.parse.max_repeats=1: must be an integer >= 2"),
])
def test_bad_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_config(compose_cfg([override]))


def test_every_generator_option_composes_and_validates():
    for name in ("smollm2", "hf", "vllm"):
        cfg = compose_cfg([f"generator={name}", "generator.model=some/model"])
        validate_config(cfg)
        assert cfg.generator.name == name and cfg.generator.parse.dup_jaccard == 0.8
