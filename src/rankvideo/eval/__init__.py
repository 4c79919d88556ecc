"""Evaluation: trec_eval-compatible retrieval metrics and system comparison."""

from rankvideo.eval.metrics import (
    AVERAGES,
    CONVENTIONS,
    DEFAULT_MEASURES,
    EvalResult,
    compare,
    evaluate,
    format_table,
    ndcg_curve,
    pooled_recall,
    to_json_dict,
)

__all__ = [
    "AVERAGES",
    "CONVENTIONS",
    "DEFAULT_MEASURES",
    "EvalResult",
    "compare",
    "evaluate",
    "format_table",
    "ndcg_curve",
    "pooled_recall",
    "to_json_dict",
]
