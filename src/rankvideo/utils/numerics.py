"""Pinning what decides CPU floating-point results beyond the seed: the number of intra-op
threads (reductions are split differently) and the vectorised kernel set ATen and oneDNN pick for
the CPU (AVX-512 and AVX2 kernels round differently). Set from `trainer.cpu_threads` and
`trainer.cpu_kernels` before a stage runs."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

KERNELS = ("avx2", "avx512", "default")
_warned: set[str] = set()


def pin_cpu_numerics(threads: int | None = None, kernels: str | None = None) -> dict:
    """Use `threads` intra-op threads and the `kernels` kernel set (None: leave torch's choice).

    The kernel set is read by torch at its first vectorised operation: pinned from a fresh process
    it always applies; in a process that already ran torch code, a different active set is logged
    once as a warning (start Python with ATEN_CPU_CAPABILITY set instead). Returns what is active.
    """
    if kernels is not None:
        kernels = str(kernels).lower()
        if kernels not in KERNELS:
            raise ValueError(f"trainer.cpu_kernels={kernels!r}: must be one of {', '.join(KERNELS)} or null")
        os.environ.setdefault("ATEN_CPU_CAPABILITY", kernels)
        if kernels != "avx512":
            os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2" if kernels == "avx2" else "SSE41")
    import torch

    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"trainer.cpu_threads={threads!r}: must be an integer >= 1 or null")
        torch.set_num_threads(int(threads))
    active = torch.backends.cpu.get_cpu_capability().lower()
    if kernels is not None and active != kernels and active not in _warned:
        _warned.add(active)
        log.warning("CPU kernels %s are active, not the configured %s: torch chose them before the stage ran; "
                    "results may differ in the last bits from a run that started with ATEN_CPU_CAPABILITY=%s",
                    active, kernels, kernels)
    return {"threads": torch.get_num_threads(), "kernels": active}
