"""Roofline model: the machine's peak FLOP/s and memory bandwidth, measured once and cached per
machine, and per-layer bound, achieved GFLOP/s and bandwidth utilisation (the edge-optimization
seed's `summarize_hardware` figures), plus a frequency-scaling multiplier for a slower edge CPU.

Calibration (`calibrate()`, or `nacos calibrate` on the command line):
* peak FLOP/s: best of several float32 matrix products (numpy's BLAS, all cores given to it),
  2 n^3 FLOPs each;
* bandwidth: best of several copies of a 256 MiB float32 array (read + write = 2 x 256 MiB), far
  beyond any cache.
These are achievable peaks, not datasheet peaks: the roofline says what this machine can really do.

The cache is one JSON per machine (keyed by CPU model, core count and host name) in
`$NACOS_CACHE_DIR`, else `$XDG_CACHE_HOME/nacos`, else `~/.cache/nacos`; `cache_dir=` overrides.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from costmodels.errors import CostModelError
from schedules.records import LayerWorkload

__all__ = ["Roofline", "calibrate", "cpu_model", "load_or_calibrate", "measure_peak_gflops", "measure_bandwidth_gbs",
           "bandwidth_method", "cache_dir", "machine_key", "CALIBRATION_VERSION"]

CALIBRATION_VERSION = 1


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; the platform's processor elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_mhz() -> float | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("cpu MHz"):
                    return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine_key() -> str:
    raw = f"{cpu_model()}|{_cores()}|{platform.node()}|{platform.machine()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    if override:
        return Path(override)
    if os.environ.get("NACOS_CACHE_DIR"):
        return Path(os.environ["NACOS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nacos"


@dataclass(frozen=True)
class Roofline:
    peak_gflops: float
    bandwidth_gbs: float
    source: str = "given"
    cpu: str = ""
    cores: int = 0
    cpu_mhz: float | None = None

    def __post_init__(self) -> None:
        for name in ("peak_gflops", "bandwidth_gbs"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise CostModelError(f"Roofline.{name} must be positive and finite, got {v!r}")

    @property
    def ridge_intensity(self) -> float:
        """FLOPs per byte where the memory roof meets the compute roof."""
        return self.peak_gflops / self.bandwidth_gbs

    def attainable_gflops(self, intensity: float) -> float:
        return min(self.peak_gflops, intensity * self.bandwidth_gbs)

    def bound(self, w: LayerWorkload) -> str:
        return "compute" if w.arithmetic_intensity >= self.ridge_intensity else "memory"

    def min_time_ms(self, w: LayerWorkload) -> float:
        """The roofline's lower bound on one execution of `w` (compute and traffic fully overlapped)."""
        flops = 2.0 * w.macs
        return 1e3 * max(flops / (self.peak_gflops * 1e9), w.bytes / (self.bandwidth_gbs * 1e9))

    def summarize(self, layers: Sequence[LayerWorkload], latencies_ms: Sequence[float] | None = None) -> dict:
        """Per layer: intensity, bound, roofline minimum time; with measured latencies (one per layer,
        for all `count` executions) also achieved GFLOP/s, compute and bandwidth utilisation."""
        if latencies_ms is not None and len(latencies_ms) != len(layers):
            raise CostModelError(f"{len(latencies_ms)} latencies for {len(layers)} layers")
        rows = []
        tot_flops = tot_bytes = tot_ms = tot_min = 0.0
        for i, w in enumerate(layers):
            flops, nbytes = 2.0 * w.macs * w.count, float(w.bytes * w.count)
            row = {"name": w.name, "op_kind": w.op_kind, "flops": flops, "bytes": nbytes,
                   "intensity": w.arithmetic_intensity, "bound": self.bound(w),
                   "roofline_min_ms": self.min_time_ms(w) * w.count}
            tot_flops += flops
            tot_bytes += nbytes
            tot_min += row["roofline_min_ms"]
            if latencies_ms is not None:
                ms = float(latencies_ms[i])
                if not (math.isfinite(ms) and ms > 0):
                    raise CostModelError(f"layer {w.name}: latency {ms!r} is not a positive finite number")
                tot_ms += ms
                row.update(self._achieved(flops, nbytes, ms))
            rows.append(row)
        total = {"flops": tot_flops, "bytes": tot_bytes, "roofline_min_ms": tot_min}
        if latencies_ms is not None:
            total["latency_ms"] = tot_ms
            total.update(self._achieved(tot_flops, tot_bytes, tot_ms))
        return {"peak_gflops": self.peak_gflops, "bandwidth_gbs": self.bandwidth_gbs,
                "ridge_intensity": self.ridge_intensity, "layers": rows, "total": total}

    def _achieved(self, flops: float, nbytes: float, ms: float) -> dict:
        gflops = flops / (ms * 1e-3) / 1e9
        gbs = nbytes / (ms * 1e-3) / 1e9
        return {"latency_ms": ms, "achieved_gflops": gflops, "compute_utilisation": gflops / self.peak_gflops,
                "achieved_gbs": gbs, "bandwidth_utilisation": gbs / self.bandwidth_gbs}

    def scaled(self, freq_ratio: float, *, cores_ratio: float = 1.0, bandwidth_ratio: float = 1.0) -> "Roofline":
        """A slower (or faster) CPU: peak FLOP/s scales with clock x cores, bandwidth by its own ratio
        (DRAM bandwidth does not follow the core clock)."""
        for name, v in (("freq_ratio", freq_ratio), ("cores_ratio", cores_ratio), ("bandwidth_ratio", bandwidth_ratio)):
            if not (math.isfinite(v) and v > 0):
                raise CostModelError(f"{name} must be positive and finite, got {v!r}")
        return Roofline(self.peak_gflops * freq_ratio * cores_ratio, self.bandwidth_gbs * bandwidth_ratio,
                        source=f"{self.source} scaled (freq x{freq_ratio:g}, cores x{cores_ratio:g}, "
                               f"bandwidth x{bandwidth_ratio:g})",
                        cpu=self.cpu, cores=self.cores,
                        cpu_mhz=self.cpu_mhz * freq_ratio if self.cpu_mhz else None)

    def latency_multiplier(self, layers: Sequence[LayerWorkload], other: "Roofline") -> float:
        """How much longer `layers` take on `other` than here, by the roofline: compute-bound layers
        follow the compute roof, memory-bound ones the bandwidth. Multiply a latency measured here by
        this to model the other machine."""
        here = sum(self.min_time_ms(w) * w.count for w in layers)
        there = sum(other.min_time_ms(w) * w.count for w in layers)
        if here <= 0:
            raise CostModelError("layers have no FLOPs or bytes: no multiplier")
        return there / here

    def to_dict(self) -> dict:
        return asdict(self)


def measure_peak_gflops(sizes: Sequence[int] = (1024,), repeats: int = 10, *, threads: int | None = None) -> float:
    """Best float32 GFLOP/s (2 n^3 FLOPs) of n x n matrix products through numpy's BLAS, for each n of
    `sizes` one warm-up and then the best of `repeats`, the best over the sizes. `threads` caps BLAS's
    threads (through threadpoolctl, when installed), so the peak matches a run on that many cores;
    None leaves BLAS its own count."""
    import numpy as np

    if not sizes or min(sizes) < 64 or repeats < 1:
        raise CostModelError("measure_peak_gflops: sizes >= 64 and repeats >= 1")
    limit: Any = contextlib.nullcontext()
    if threads is not None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # numpy's BLAS then uses its own thread count
            pass
        else:
            limit = threadpool_limits(limits=int(threads))
    best_gflops = 0.0
    with limit:
        for n in sizes:
            rng = np.random.default_rng(0)
            a = rng.standard_normal((n, n), dtype=np.float32)
            b = rng.standard_normal((n, n), dtype=np.float32)
            c = np.empty_like(a)
            np.matmul(a, b, out=c)  # warm-up: BLAS threads, page faults
            best = math.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                np.matmul(a, b, out=c)
                best = min(best, time.perf_counter() - t0)
            best_gflops = max(best_gflops, 2.0 * n ** 3 / best / 1e9)
    return best_gflops


def measure_bandwidth_gbs(copy_mib: int = 256, repeats: int = 5) -> float:
    """Memory bandwidth (GB/s): the best of `repeats` copies of a `copy_mib` MiB float32 array, counted as
    read + write (2 x the array's bytes); 256 MiB is far beyond any cache."""
    import numpy as np

    if copy_mib < 8 or repeats < 1:
        raise CostModelError("measure_bandwidth_gbs: copy_mib >= 8 and repeats >= 1")
    n = copy_mib * (1 << 20) // 4
    src = np.ones(n, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best_copy = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best_copy = min(best_copy, time.perf_counter() - t0)
    return 2.0 * src.nbytes / best_copy / 1e9


def bandwidth_method(copy_mib: int = 256, repeats: int = 5) -> str:
    """How `measure_bandwidth_gbs(copy_mib, repeats)` measures, in words (a calibration record's method)."""
    return f"numpy copy of {copy_mib} MiB float32 (read + write), best of {repeats}"


def calibrate(*, matmul_n: int = 1024, matmul_repeats: int = 10, copy_mib: int = 256, copy_repeats: int = 5) -> dict:
    """Measure peak FLOP/s and memory bandwidth of this machine now (a few seconds)."""
    import numpy as np

    if matmul_n < 64 or copy_mib < 8 or matmul_repeats < 1 or copy_repeats < 1:
        raise CostModelError("calibrate: matmul_n >= 64, copy_mib >= 8 and repeats >= 1")
    peak_gflops = measure_peak_gflops((matmul_n,), matmul_repeats)
    bandwidth_gbs = measure_bandwidth_gbs(copy_mib, copy_repeats)
    return {
        "calibration_version": CALIBRATION_VERSION,
        "peak_gflops": peak_gflops,
        "bandwidth_gbs": bandwidth_gbs,
        "method": {"matmul": f"float32 {matmul_n}x{matmul_n} numpy matmul, best of {matmul_repeats}",
                   "bandwidth": bandwidth_method(copy_mib, copy_repeats)},
        "cpu": cpu_model(),
        "cores": _cores(),
        "cpu_mhz": _cpu_mhz(),
        "host_key": machine_key(),
        "numpy": np.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _cache_file(cache: str | os.PathLike | None) -> Path:
    return cache_dir(cache) / f"calibration-{machine_key()}.json"


def load_or_calibrate(*, cache: str | os.PathLike | None = None, force: bool = False,
                      **kwargs) -> tuple[Roofline, dict, bool]:
    """(roofline, calibration record, from_cache). Measures and writes the cache when absent, stale
    (another calibration version) or `force`."""
    path = _cache_file(cache)
    record = None
    if path.is_file() and not force:
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None  # a corrupt cache is remeasured, not trusted
        if not isinstance(record, dict) or record.get("calibration_version") != CALIBRATION_VERSION \
                or record.get("host_key") != machine_key():
            record = None
    from_cache = record is not None
    if record is None:
        record = calibrate(**kwargs)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, path)
    record["cache_file"] = str(path)
    try:
        roof = Roofline(float(record["peak_gflops"]), float(record["bandwidth_gbs"]),
                        source=f"nacos calibrate ({record.get('date', '?')})", cpu=str(record.get("cpu", "")),
                        cores=int(record.get("cores", 0)), cpu_mhz=record.get("cpu_mhz"))
    except (KeyError, TypeError, ValueError) as exc:
        raise CostModelError(f"{path}: calibration record unusable ({exc}); rerun `nacos calibrate --force`") from exc
    return roof, record, from_cache
