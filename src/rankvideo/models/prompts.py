"""Prompts of the RankVideo reranker.

The relevance prompt is the paper's (fig. 12), word for word. It is used
identically in training and at inference: the official code trains with a
shorter prompt and reads the score at another position at inference, and that
mismatch is exactly what this module exists to rule out (see
../shared/paper-notes.md, "Model and score").

The score is read at the position right after :data:`ANSWER_PREFIX`, which is
appended to the assistant generation prompt: the model is never asked to
generate, it only has to put its yes/no mass on the very next token.
"""

from __future__ import annotations

__all__ = [
    "ANSWER_PREFIX",
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


def build_messages(query: str) -> list[dict]:
    """Chat messages asking whether the (one) video is relevant to ``query``.

    The video item carries no path or frames: frames are handed to the
    processor separately, and the chat template only marks where they go.
    The video comes before the text, as in the paper's figure and Qwen's own
    examples, so every query token can attend to every frame.
    """
    query = _check_text("query", query)
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        {
            "role": "user",
            "content": [{"type": "video"}, {"type": "text", "text": USER.format(query=query)}],
        },
    ]


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
