"""Pinning CPU threads and kernels: applied in a fresh process, refused when out of range, and the
two things it pins really change the bytes of a backward pass (so pinning them is not for show)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rankvideo.utils.numerics import pin_cpu_numerics

PROBE = r"""
import sys, hashlib, torch
from rankvideo.utils.numerics import pin_cpu_numerics
active = pin_cpu_numerics(int(sys.argv[1]), None if sys.argv[2] == "none" else sys.argv[2])
torch.manual_seed(0)
a = torch.randn(64, 4096, requires_grad=True)
b = torch.randn(4096, 256)
(torch.tanh(a @ b).sum(0) ** 2).sum().backward()
print(active["threads"], active["kernels"], hashlib.sha256(a.grad.numpy().tobytes()).hexdigest()[:16])
"""


def _probe(threads: int, kernels: str) -> list[str]:
    # A stage run earlier in this process may have pinned the kernels through the environment.
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    out = subprocess.run([sys.executable, "-c", PROBE, str(threads), kernels], capture_output=True, text=True,
                         check=True, env=env)
    return out.stdout.split()


def test_pinned_threads_and_kernels_are_active_in_a_fresh_process():
    threads, kernels, digest = _probe(1, "avx2")
    assert (threads, kernels) == ("1", "avx2")
    assert _probe(1, "avx2")[2] == digest  # same pins, same bytes


def test_out_of_range_values_are_refused():
    with pytest.raises(ValueError, match="trainer.cpu_kernels='sse9'"):
        pin_cpu_numerics(None, "sse9")
    with pytest.raises(ValueError, match="trainer.cpu_threads=0"):
        pin_cpu_numerics(0, None)


def test_the_kernel_set_decides_the_bytes():
    import torch

    if torch.backends.cpu.get_cpu_capability().lower() not in ("avx2", "avx512"):
        pytest.skip("this CPU has no AVX2")
    assert _probe(1, "avx2")[2] != _probe(1, "default")[2]
