"""Backbones (tiny offline Qwen3-VL, hub Qwen-VL models), the paper's prompt, and the yes/no score."""
