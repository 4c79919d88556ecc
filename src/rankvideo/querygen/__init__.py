"""Query generation from a video's text proxies with a language model (paper section 3.2).

- `evidence`: the five evidence variants (caption, asr, ocr, metadata, all) of one video;
- `parse`: strict parsing of a generator's answer, with a counted reason for every drop;
- `generators`: the language models (`smollm2` offline, `hf` any causal LM, `vllm` on GPUs);
- `generate`: the resumable (video, variant) loop and the merge of its queries into a benchmark.
"""

from .evidence import VARIANTS, Proxies, evidence_text, load_proxies
from .parse import DROP_REASONS, ParseConfig, QueryFilter, parse_query

__all__ = ["VARIANTS", "Proxies", "evidence_text", "load_proxies", "DROP_REASONS", "ParseConfig", "QueryFilter",
           "parse_query"]
