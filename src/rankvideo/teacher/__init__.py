"""The text teacher of the data synthesis pipeline (paper section 3, items 3-5).

Backends (`conf/teacher/*.yaml`, picked by `teacher.name`):
- `minilm` (default, offline, CPU): pretrained all-MiniLM-L6-v2 features calibrated on train pairs;
- `hf`: any transformers causal LM (ReasonRank / Qwen3 where weights are available);
- `vllm`: the same LM protocol on vLLM (GPU).
Mining and filters live in `mining`; the stage that writes labels.jsonl is `rankvideo.stages.teacher`.
"""

from __future__ import annotations

from collections.abc import Mapping

from .base import Teacher, TeacherBase, TeacherOutput, evidence_text, p_yes, sigmoid, split_evidence

__all__ = [
    "Teacher",
    "TeacherBase",
    "TeacherOutput",
    "build_teacher",
    "evidence_text",
    "p_yes",
    "sigmoid",
    "split_evidence",
]


def build_teacher(node: Mapping) -> Teacher:
    """The teacher a `teacher` config node describes (the minilm one still needs fit or a calibration).

    Backends are imported here, lazily: building the minilm teacher must not import vLLM, and the
    LM backends must not need the MiniLM wheel."""
    name = node["name"]
    if name != "hf" and node.get("conventions", "project") != "project":
        raise ValueError(f"teacher.conventions={node.get('conventions')!r}: only teacher=hf reads the official "
                         f"teacher's conventions, not teacher={name}")
    if name == "minilm":
        from .minilm import PINNED_SHA256, MiniLMTeacher

        return MiniLMTeacher(model_path=node.get("model_path"),
                             sha256=PINNED_SHA256 if node.get("verify_weights", True) else None,
                             batch_size=int(node.get("batch_size", 64)))
    if name == "hf":
        from .hf import HFTeacher

        return HFTeacher(node["path"], max_new_tokens=int(node.get("max_new_tokens", 0)),
                         trust_remote_code=bool(node.get("trust_remote_code", False)), dtype=str(node.get("dtype", "auto")),
                         device=str(node.get("device", "auto")), batch_size=int(node.get("batch_size", 8)),
                         conventions=str(node.get("conventions", "project")))
    if name == "vllm":
        from .vllm_backend import VLLMTeacher

        return VLLMTeacher(node["path"], max_new_tokens=int(node.get("max_new_tokens", 512)),
                           trust_remote_code=bool(node.get("trust_remote_code", False)),
                           tensor_parallel_size=int(node.get("tensor_parallel_size", 1)),
                           gpu_memory_utilization=float(node.get("gpu_memory_utilization", 0.9)),
                           max_model_len=int(node.get("max_model_len", 8192)), dtype=str(node.get("dtype", "auto")))
    raise ValueError(f"teacher={name!r}: unknown teacher backend (minilm | hf | vllm)")
