"""Part 3 of benchmarks/bench_simulators.py: the largest cubic volume each engine would finish in 10 minutes,
extrapolated from measured run times (nothing runs for 10 minutes) and capped by memory estimates."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from simulator_tables import fmt_bytes

from spikereg_deploy.network import NetworkSpec
from spikereg_deploy.simulators.simulation import estimate_memory
from spikereg_deploy.simulators.stock_lava import stock_nnz

TEN_MINUTES_S = 600.0


def fit_linear(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Fit y = a + b * x (least squares on relative error, a >= 0): a fixed start-up plus a cost per unit."""
    x = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    if len(points) == 1:
        return 0.0, float(y[0] / x[0])
    design = np.stack([np.ones_like(x), x], axis=1) / y[:, None]
    (a, b), *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    if a < 0 or b <= 0:  # a start-up cannot be negative: fall back to the cost per unit of the largest point
        a, b = 0.0, float(y[np.argmax(x)] / x.max())
    return float(a), float(b)


def memory_estimator(spec: NetworkSpec, engine: str,
                     stock_memory: tuple[float, float]) -> tuple[Callable[[int], int], str]:
    """Peak-memory estimate per n for an engine, and where it comes from."""
    if engine == "lava stock Sparse":
        base, per_nnz = stock_memory
        return (lambda n: int(base + stock_nnz(spec, n) * per_nnz),
                f"{fmt_bytes(base)} + synapses x {per_nnz:.1f} B (fitted to the measured peaks)")
    key = "lava" if engine.startswith("lava") else "reference"
    return (lambda n: int(estimate_memory(spec, (n, n, n), key)),
            f"spikereg_deploy.simulators.simulation.estimate_memory(engine={key!r})")


@dataclass
class Capacity:
    engine: str
    measured: list[tuple[int, float]]
    startup_s: float
    per_voxel_s: float
    n_time: int
    n_memory: int | None  # None: memory does not bind below n_time
    n_max: int
    limit: str
    predicted_s: float
    predicted_bytes: int
    memory_source: str


def capacity(spec: NetworkSpec, engine: str, points: list[tuple[int, float]], stock_memory: tuple[float, float],
             ram: int, budget_s: float = TEN_MINUTES_S) -> Capacity:
    """Largest n (a multiple the network accepts) whose extrapolated time and estimated memory both fit."""
    a, b = fit_linear([(n**3, t) for n, t in points])
    step = spec.required_multiple()
    n_time = int(((budget_s - a) / b) ** (1 / 3)) // step * step if budget_s > a else 0
    estimate, source = memory_estimator(spec, engine, stock_memory)
    n_memory: int | None = None
    n = step
    while n <= n_time:
        if estimate(n) > ram:
            n_memory = n - step
            break
        n += step
    n_max = n_time if n_memory is None else n_memory
    limit = "time" if n_memory is None else "memory"
    predicted_s = a + b * n_max**3 if n_max else math.nan
    return Capacity(engine, points, a, b, n_time, n_memory, n_max, limit, predicted_s,
                    estimate(n_max) if n_max else 0, source)


def fit_with_guess(points: list[tuple[float, float]], guess_slope: float) -> tuple[float, float]:
    """Like `fit_linear`, but one point only fixes the start-up: its slope comes from the guess."""
    if not points:
        return 0.0, guess_slope
    if len(points) == 1:
        x, y = points[0]
        return max(0.0, y - guess_slope * x), guess_slope
    return fit_linear(points)
