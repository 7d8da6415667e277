"""Devices and precision: where a model runs, and whether bf16 pays there.

`--precision auto` means bf16 autocast where the hardware computes bf16 fast, fp32 elsewhere:
- CUDA: GPUs that support bf16 (Ampere and later).
- CPU: only with native bf16 instructions (AMX-BF16 or AVX512-BF16), confirmed by a short matmul probe. Without
  them torch emulates bf16 and a matmul runs 15-200x slower than fp32 (0.6 against 11 GFLOP/s measured on an AVX2
  EPYC); with AMX a bf16 matmul measured 151 GFLOP/s against 27 fp32. The probe runs only where the flags are
  present (so a slow CPU never pays for it) and its verdict is cached per CPU, torch version and thread count,
  in memory and in `~/.cache/rewardkit/` (REWARDKIT_CACHE_DIR overrides).
- anything else (MPS): fp32.

    device = resolve_device("auto")
    dtype = precision_dtype("auto", device)         # torch.bfloat16 or None (= plain fp32)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None): ...
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of native bf16 arithmetic
BF16_MIN_SPEEDUP = 1.3  # bf16 must beat fp32 by this much in the probe to be chosen (autocast adds casts)


def resolve_device(name: str = "auto") -> torch.device:
    """`auto`: the first CUDA GPU if there is one, else the CPU."""
    if name != "auto":
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def precision_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`; None means plain fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_bf16_verdict().fast else None
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    return "bf16" if dtype == torch.bfloat16 else "fp32"


# ------------------------------------------------------------------------------------------------------ the CPU
@dataclass(frozen=True)
class CpuBf16Verdict:
    """Whether this CPU computes bf16 fast, and the evidence."""

    cpu: str
    bf16_flags: tuple[str, ...]  # which of BF16_CPU_FLAGS the CPU reports
    threads: int
    bf16_gflops: float | None = None  # probe results; None when the probe did not run (no bf16 flags)
    fp32_gflops: float | None = None

    @property
    def speedup(self) -> float | None:
        if not self.bf16_gflops or not self.fp32_gflops:
            return None
        return self.bf16_gflops / self.fp32_gflops

    @property
    def fast(self) -> bool:
        return bool(self.bf16_flags) and (self.speedup or 0.0) >= BF16_MIN_SPEEDUP


def cpu_model_name() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The instruction-set flags the CPU reports (Linux /proc/cpuinfo; empty elsewhere)."""
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def matmul_gflops(dtype: torch.dtype, size: int = 512, seconds: float = 0.05) -> float:
    """Best GFLOP/s of a size x size matmul in `dtype` on the CPU over about `seconds`."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    torch.matmul(a, b)  # warm-up: thread pool, kernel selection
    best, started = float("inf"), time.perf_counter()
    for _ in range(50):
        tick = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - tick)
        if time.perf_counter() - started > seconds:
            break
    return 2.0 * size**3 / best / 1e9


def probe_cpu_bf16(
    flags: Iterable[str] | None = None,
    probe: Callable[[torch.dtype], float] = matmul_gflops,
    cpu: str | None = None,
) -> CpuBf16Verdict:
    """Check the instruction set, then (only if it has bf16) time bf16 against fp32. Flags and the probe can be
    injected (tests, or a machine whose flags are hidden by a hypervisor)."""
    present = set(cpu_flags() if flags is None else flags)
    bf16_flags = tuple(flag for flag in BF16_CPU_FLAGS if flag in present)
    verdict = CpuBf16Verdict(cpu or cpu_model_name(), bf16_flags, torch.get_num_threads())
    if not bf16_flags:
        return verdict
    return CpuBf16Verdict(verdict.cpu, bf16_flags, verdict.threads, probe(torch.bfloat16), probe(torch.float32))


def cache_dir() -> Path:
    if os.environ.get("REWARDKIT_CACHE_DIR"):
        return Path(os.environ["REWARDKIT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rewardkit"


def cached_cpu_bf16_verdict(directory: Path | None = None, **probe_arguments) -> CpuBf16Verdict:
    """`probe_cpu_bf16`, read from or written to the cache file for this CPU, torch version and thread count."""
    flags = sorted(set(cpu_flags() if probe_arguments.get("flags") is None else probe_arguments["flags"]))
    key = "|".join([probe_arguments.get("cpu") or cpu_model_name(), hashlib.sha1(" ".join(flags).encode()).hexdigest(),
                    torch.__version__, str(torch.get_num_threads())])  # fmt: skip
    path = (directory or cache_dir()) / "cpu_bf16.json"
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if isinstance(cached, dict) and isinstance(cached.get(key), dict):
        try:
            entry = cached[key]
            return CpuBf16Verdict(**{**entry, "bf16_flags": tuple(entry["bf16_flags"])})
        except TypeError:  # written by another version of this code: probe again
            pass
    verdict = probe_cpu_bf16(**probe_arguments)
    try:  # a cache that cannot be written only costs the next process a probe
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({**(cached if isinstance(cached, dict) else {}), key: asdict(verdict)}))
        temporary.replace(path)
    except OSError:
        pass
    return verdict


def cpu_bf16_verdict() -> CpuBf16Verdict:
    """This process's answer for its current thread count (probed or read from the cache once)."""
    return _verdict_for(torch.get_num_threads())


@functools.cache
def _verdict_for(threads: int) -> CpuBf16Verdict:
    return cached_cpu_bf16_verdict()
