"""The study's config helpers: the search space, enqueued points, overrides that round-trip through
Hydra, storage URLs with their passwords hidden."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from rankvideo.tuning.study import as_overrides, flat_values, make_pruner, redact, search_space, train_command


def test_search_space_flattens_nested_specs():
    space = search_space(OmegaConf.create({"loss": {"pairwise": {"low": 0.1, "high": 10, "log": True},
                                                    "tau_pair": {"choices": [5, 10]}}}))
    assert space == {"loss.pairwise": {"low": 0.1, "high": 10, "log": True}, "loss.tau_pair": {"choices": [5, 10]}}


@pytest.mark.parametrize("space, message", [
    ({}, "tune.space is empty"),
    ({"loss": {"pairwise": 1.0}}, "tune.space.loss.pairwise: expected a spec"),
    ({"loss": {"pairwise": {"low": 2, "high": 1}}}, "low 2 must be below high 1"),
    ({"loss": {"pairwise": {"low": 0, "high": 1, "log": True}}}, "a log range needs low > 0"),
])
def test_search_space_errors_name_the_key(space, message):
    with pytest.raises(ValueError, match=message):
        search_space(OmegaConf.create(space))


def test_enqueued_points_and_overrides_round_trip():
    assert flat_values({"loss": {"pairwise": 1.0, "distill": 5.0}}) == {"loss.pairwise": 1.0, "loss.distill": 5.0}
    values = {"loss.pairwise": 0.1 + 0.2, "peft.enabled": True, "loss.name": "paper"}
    overrides = as_overrides(values)
    assert overrides == ["loss.pairwise=0.30000000000000004", "peft.enabled=true", "loss.name=paper"]
    assert float(overrides[0].split("=")[1]) == values["loss.pairwise"]  # exact, not rounded
    assert train_command(["a=1", "sweep.eval_splits=[val,test]"]) == "python src/train.py a=1 'sweep.eval_splits=[val,test]'"


def test_storage_password_is_hidden_and_pruner_type_checked():
    assert redact("postgresql://alice:s3cret@db.example/optuna") == "postgresql://alice:***@db.example/optuna"
    assert redact(None) == "in-memory"
    with pytest.raises(ValueError, match="median | threshold | none"):
        make_pruner(OmegaConf.create({"type": "hyperband"}))
