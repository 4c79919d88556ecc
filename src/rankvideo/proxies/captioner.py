"""Captions of a video from a vision-language model (the paper's section 3.1: 16 frames, 3 to 6
factual sentences).

- `tiny`: the project's pre-trained tiny backbone (`pretrained/tiny_qwen3_vl`), which learned to
  describe the embedded world's clips in pre-training; it is asked with the stage-1 caption
  prompt it was trained on and answers `<think>...</think>`;
- `hf`: any image-text-to-text model folder or hub id (Qwen3-VL, Qwen2.5-Omni, ...) with the
  prompt and frame count in config (the paper's by default);
- `vllm`: the same through vLLM on GPUs;
- `none`: no captions.

`tiny` and `hf` go through the reranker's own code: `load_backbone` (offline for a folder),
`read_clip` for the frames and the same processor call (`_process`: real timestamps, no
resampling), then greedy generation.
"""

from __future__ import annotations

import re
from typing import Mapping

from . import MissingToolError

_THINK = re.compile(r"</?think>")


def clean_caption(text: str) -> str:
    """The generated text without `<think>` tags and surrounding white space, on one line."""
    return " ".join(_THINK.sub(" ", text).split())


def _messages(system: str | None, user: str | None) -> list[dict]:
    from ..models.prompts import build_caption_messages

    if not user:
        return build_caption_messages()  # the prompt the tiny backbone was pre-trained with
    msgs = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
    return msgs + [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": user}]}]


class HFCaptioner:
    """Greedy captions from an image-text-to-text model loaded like the reranker's backbone."""

    def __init__(self, name: str, path: str, *, num_frames: int = 16, fps: float = 2.0, max_new_tokens: int = 160,
                 system: str | None = None, user: str | None = None, dtype: str | None = None,
                 trust_remote_code: bool = False, sampling: str = "grid") -> None:
        from ..models.tiny import load_backbone

        self.name = name
        self.model, self.processor = load_backbone(str(path), trust_remote_code=bool(trust_remote_code), dtype=dtype)
        self.num_frames, self.fps, self.sampling = int(num_frames), float(fps), str(sampling)
        self.max_new_tokens = int(max_new_tokens)
        self.messages = _messages(system, user)

    def caption(self, clip) -> str:
        import torch

        from ..models.scoring import _device_of, _process, _prompt

        text = _prompt(self.processor, self.messages)
        batch = _process(self.processor, [text], [clip])
        batch = {k: v.to(_device_of(self.model)) if hasattr(v, "to") else v for k, v in batch.items()}
        tok = self.processor.tokenizer
        with torch.inference_mode():
            out = self.model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        new = out[0, batch["input_ids"].shape[1]:]
        return clean_caption(tok.decode(new, skip_special_tokens=True))


class VLLMCaptioner:
    """The same prompt through vLLM (GPUs); frames from `read_clip` as the video input."""

    def __init__(self, name: str, path: str, *, num_frames: int = 16, fps: float = 2.0, max_new_tokens: int = 160,
                 system: str | None = None, user: str | None = None, dtype: str | None = "auto",
                 trust_remote_code: bool = False, sampling: str = "grid", gpu_memory_utilization: float = 0.9,
                 tensor_parallel_size: int = 1) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise MissingToolError("captioner=vllm needs vLLM on a GPU machine: pip install vllm "
                                   "(or use proxies/captioner=hf)") from None
        from ..models.tiny import load_processor

        self.name = name
        self.llm = LLM(model=str(path), dtype=dtype or "auto", trust_remote_code=bool(trust_remote_code),
                       gpu_memory_utilization=float(gpu_memory_utilization), tensor_parallel_size=int(tensor_parallel_size),
                       limit_mm_per_prompt={"video": 1})
        self.params = SamplingParams(temperature=0.0, max_tokens=int(max_new_tokens))
        self.processor = load_processor(str(path), trust_remote_code=bool(trust_remote_code))
        self.num_frames, self.fps, self.sampling = int(num_frames), float(fps), str(sampling)
        self.messages = _messages(system, user)

    def caption(self, clip) -> str:
        from ..models.scoring import _prompt, video_inputs

        frames, metadata = video_inputs(clip)
        prompt = _prompt(self.processor, self.messages)
        out = self.llm.generate([{"prompt": prompt, "multi_modal_data": {"video": [(frames, metadata.__dict__)]}}],
                                self.params, use_tqdm=False)
        return clean_caption(out[0].outputs[0].text)


def make_captioner(cfg: Mapping, *, pretrained: str | None = None):
    """The captioner named by `cfg["name"]` (a `captioner` config node), or None for `none`.
    `tiny` reads `pretrained` (paths.pretrained) when `cfg["path"]` is empty."""
    name = str(cfg.get("name", "none"))
    opts = {k: v for k, v in dict(cfg).items() if k not in ("name", "path")}
    if name == "none":
        return None
    path = cfg.get("path") or (pretrained if name == "tiny" else None)
    if not path or str(path) == "???":
        raise ValueError(f"proxies.captioner.path is required for captioner={name} (a model folder or hub id)")
    if name in ("tiny", "hf"):
        return HFCaptioner(name, str(path), **opts)
    if name == "vllm":
        return VLLMCaptioner(name, str(path), **opts)
    raise ValueError(f"proxies.captioner.name={name!r}: unknown (tiny | hf | vllm | none)")
