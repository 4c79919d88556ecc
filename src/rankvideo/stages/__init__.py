"""One `run(cfg) -> dict` per pipeline stage. The Hydra entry scripts in src/ and the DVC stage
commands (`python -m rankvideo.stages NAME`) call the same functions; tests call them too."""

STAGES = ("synthesize", "retrieve", "rerank", "evaluate")
