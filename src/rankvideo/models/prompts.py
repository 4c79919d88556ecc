"""Prompts of the RankVideo reranker, as presets.

A preset (:class:`PromptPreset`) fixes everything that decides a score besides the model and the
frames: the system and user text, whether the video comes before or after the text in the user
turn, what is appended after the assistant generation prompt (the score is read at the last
position of the prompt), and which vocabulary ids count as "yes" and "no".

- ``paper`` (the default for models trained here): the paper's figure-12 prompt, video first,
  ``<answer>`` appended, one id each for "yes" and "no" (the token after ``<answer>``). Training
  and inference use it identically.
- ``official_inference``: the released RankVideo's inference (``rankvideo/inference.py`` of the
  official code): its own system text, the query before the video, nothing appended, and the
  log-sum-exp over every id whose decoded text, stripped and lower-cased, is "yes" (resp. "no").
- ``official_training``: the prompt the released model was trained with (``train_reranker.py``):
  video first, its shorter system and user text, ``<answer>`` appended, the first token of the
  plain words "yes" and "no".
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ANSWER_PREFIX",
    "PRESETS",
    "PromptPreset",
    "get_preset",
    "CAPTION_SYSTEM",
    "CAPTION_USER",
    "SYSTEM",
    "THINK_CLOSE",
    "THINK_OPEN",
    "USER",
    "build_caption_messages",
    "build_messages",
    "build_question_messages",
]

SYSTEM = (
    "You are a helpful assistant specialized in video and text understanding. Given a text query and a "
    "video, your task is to determine if the video is relevant to the query. Respond with "
    "<answer>yes</answer> if the video is relevant to the query or <answer>no</answer> if it is not."
)

USER = (
    "Query: {query}\n"
    "Is the video relevant to the query? Respond with <answer>yes</answer> or <answer>no</answer>."
)

# Appended after the assistant generation prompt; the yes/no logits are read at
# its last token (the prediction of the token that follows it).
ANSWER_PREFIX = "<answer>"

# The released model's inference prompt, character for character (the system text ends with a space).
OFFICIAL_INFERENCE_SYSTEM = (
    "You are a helpful assistant specialized in video and text understanding. Given a text query and a "
    "video, your task is to determine if the video is relevant to the query. Respond with "
    "<answer>yes</answer> if the video is relevant, or <answer>no</answer> if it is not. "
)
OFFICIAL_INFERENCE_USER = (
    "Query: {query}\n"
    "Is the video relevant to the query? Respond with <answer>yes</answer> or <answer>no</answer>."
)
# The released model's training prompt.
OFFICIAL_TRAINING_SYSTEM = (
    "You are a helpful assistant specialized in video and text understanding. Given a text query and a "
    "video, determine if the video is relevant."
)
OFFICIAL_TRAINING_USER = "Query: {query}\nIs the video relevant? Answer with yes or no."

# How the "yes" and "no" ids are chosen (PromptPreset.answer_ids):
#   "after_prefix": the single token that follows `answer_prefix` (ANSWER_PREFIX + word must encode as
#                   the prefix's tokens and one more); the score is logit(yes) - logit(no).
#   "first_token":  the first token of the bare word ("yes", "no") encoded alone.
#   "variants":     every id below the tokenizer's base vocabulary size whose decoded text, stripped and
#                   lower-cased, is the word; the score is logsumexp(yes logits) - logsumexp(no logits),
#                   0.0 when either set is empty.
ANSWER_ID_RULES = ("after_prefix", "first_token", "variants")


@dataclass(frozen=True)
class PromptPreset:
    """Everything about the prompt that decides a score (see the module docstring)."""

    name: str
    system: str
    user: str  # with a {query} field
    video_first: bool
    answer_prefix: str  # appended after the generation prompt; "" reads at the generation position
    answer_ids: str  # one of ANSWER_ID_RULES

    def __post_init__(self):
        if self.answer_ids not in ANSWER_ID_RULES:
            raise ValueError(f"prompt preset {self.name!r}: answer_ids must be one of {ANSWER_ID_RULES}, "
                             f"got {self.answer_ids!r}")
        if self.answer_ids == "after_prefix" and not self.answer_prefix:
            raise ValueError(f"prompt preset {self.name!r}: answer_ids 'after_prefix' needs an answer_prefix")
        if "{query}" not in self.user:
            raise ValueError(f"prompt preset {self.name!r}: the user text has no {{query}} field")

    def messages(self, query: str) -> list[dict]:
        """Chat messages asking whether the (one) video is relevant to ``query``."""
        query = _check_text("query", query)
        video = {"type": "video"}
        text = {"type": "text", "text": self.user.format(query=query)}
        return [
            {"role": "system", "content": [{"type": "text", "text": self.system}]},
            {"role": "user", "content": [video, text] if self.video_first else [text, video]},
        ]

# Stage-1 (perception SFT) target markers: the caption is wrapped in them.
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# Stage 1 trains captioning, not relevance, so it has its own instruction. The
# paper gives no stage-1 prompt; these are our own words. Keeping the system
# prompt's first sentence shared with SYSTEM means the perception stage and the
# reranking stage condition on the same opening text.
CAPTION_SYSTEM = (
    "You are a helpful assistant specialized in video and text understanding. Given a video, your task "
    "is to describe what it shows accurately. Respond within <think></think>."
)
CAPTION_USER = "Describe this video. Respond within <think></think>."


def _check_text(name: str, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def build_messages(query: str, prompt: "str | PromptPreset" = "paper") -> list[dict]:
    """Chat messages asking whether the (one) video is relevant to ``query`` under the preset
    ``prompt`` (a name in :data:`PRESETS` or a :class:`PromptPreset`).

    The video item carries no path or frames: frames are handed to the processor separately, and
    the chat template only marks where they go. Under ``paper`` the video comes before the text,
    as in the paper's figure and Qwen's own examples, so every query token can attend to every
    frame.
    """
    return get_preset(prompt).messages(query)


def build_caption_messages() -> list[dict]:
    """Chat messages for the stage-1 captioning example (video, then instruction)."""
    return [
        {"role": "system", "content": [{"type": "text", "text": CAPTION_SYSTEM}]},
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": CAPTION_USER}]},
    ]


def build_question_messages(text: str, system: str | None = None) -> list[dict]:
    """Chat messages asking ``text`` about the (one) video: the video, then the text, in the user
    turn, after an optional system prompt. The pre-training stage's question forms."""
    text = _check_text("text", text)
    messages = [{"role": "system", "content": [{"type": "text", "text": _check_text("system", system)}]}] if system else []
    return messages + [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}]


PRESETS: dict[str, PromptPreset] = {
    p.name: p
    for p in (
        PromptPreset("paper", SYSTEM, USER, video_first=True, answer_prefix=ANSWER_PREFIX, answer_ids="after_prefix"),
        PromptPreset("official_inference", OFFICIAL_INFERENCE_SYSTEM, OFFICIAL_INFERENCE_USER, video_first=False,
                     answer_prefix="", answer_ids="variants"),
        PromptPreset("official_training", OFFICIAL_TRAINING_SYSTEM, OFFICIAL_TRAINING_USER, video_first=True,
                     answer_prefix=ANSWER_PREFIX, answer_ids="first_token"),
    )
}


def get_preset(prompt: "str | PromptPreset") -> PromptPreset:
    """The preset named ``prompt`` (or ``prompt`` itself); an unknown name is an error listing the
    known ones."""
    if isinstance(prompt, PromptPreset):
        return prompt
    if isinstance(prompt, str) and prompt in PRESETS:
        return PRESETS[prompt]
    raise ValueError(f"unknown prompt preset {prompt!r}; known presets: {', '.join(sorted(PRESETS))}")
