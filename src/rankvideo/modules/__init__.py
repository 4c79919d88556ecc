"""LightningModules of the two-stage curriculum: `PerceptionSFTModule` (stage 1) and
`RerankingModule` (stage 2), on a shared `BackboneModule` that builds the model in
`configure_model()` (so FSDP can shard it as it is built) and owns optimiser and schedule."""

from .reranker import BackboneModule, PerceptionSFTModule, RerankingModule

__all__ = ["BackboneModule", "PerceptionSFTModule", "RerankingModule"]
