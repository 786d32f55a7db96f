"""Benchmark the simulators side by side, so claims about their speed rest on one measured run.

1. Synaptic events per second of our Lava graph (one `Conv3dSynapse` per edge) against the same network built only
   from lava-nc's stock processes (`Sparse` / `DelaySparse` matrices, `LIF`, io `RingBuffer` source and sink), both in
   `Loihi2SimCfg(select_tag='fixed_pt')`; the stock run is checked against the reference engine's integers.
2. The integer reference engine (`IntegerNetwork.run`) against a dense float32 torch ANN of the same layer graph run
   T times, both on 2 threads.
3. The largest cubic volume each engine would finish in 10 minutes on this machine, extrapolated from the timings
   (nothing runs for 10 minutes) and capped by the memory estimates.

Usage: python benchmarks/bench_simulators.py [--sizes 16 24 32] [--quick]
Writes benchmarks/results/simulators.json.

The stock graph is `spikereg_deploy.simulators.stock_lava`, the memory sampler
`spikereg_deploy.simulators.memory_probe`; part 2 lives in `simulator_engines.py`, part 3 in `simulator_capacity.py`
and the tables in `simulator_tables.py`, beside this script.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Lava forks one OS process per process model; a torch thread pool started before the fork hangs them
# (docs/hardware-facts.md, "Lava runtime").
torch.set_num_threads(1)

from simulator_capacity import capacity, fit_with_guess  # noqa: E402
from simulator_engines import EngineTiming, best_time, random_image, time_reference_vs_ann  # noqa: E402
from simulator_tables import NOTES, clean_json, fmt_bytes, format_tables  # noqa: E402

from spikereg_deploy.atomic import write_json  # noqa: E402
from spikereg_deploy.engine import IntegerNetwork  # noqa: E402
from spikereg_deploy.network import NetworkSpec  # noqa: E402
from spikereg_deploy.simulators.memory_probe import PeakMemory, ram_bytes  # noqa: E402
from spikereg_deploy.simulators.stock_lava import run_stock_lava, stock_nnz  # noqa: E402

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "simulators.json"
TORCH_THREADS = 2
#: A CSR matrix with int32 values and int32 column indices costs 8 bytes per stored synapse (plus row pointers).
CSR_BYTES_PER_NNZ = 8
TARGET_EVENTS_RATIO = 10.0
#: Part 3 lets a run use this share of the machine's RAM (the rest is the OS and page cache).
RAM_USABLE = 0.9
TARGET_REFERENCE_SLOWDOWN = 3.0


# ---------------------------------------------------------------------------------------------------------------
# measuring helpers
# ---------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def compile_timer() -> Iterator[dict[str, float]]:
    """Time Lava's compile + runtime start-up (`create_runtime`), which the first `run()` call hides inside it."""
    from lava.magma.core.process.process import AbstractProcess

    original = AbstractProcess.create_runtime
    record: dict[str, float] = {"compile_s": 0.0}

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            record["compile_s"] += time.perf_counter() - started

    AbstractProcess.create_runtime = timed  # type: ignore[method-assign]
    try:
        yield record
    finally:
        AbstractProcess.create_runtime = original  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------------------------
# part 1: our Lava graph against lava-nc's stock processes
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class LavaTiming:
    engine: str
    n: int
    step_s: float  # wall time of the T + depth steps, compile and start-up excluded
    compile_s: float  # compile + runtime start-up (forking the process models)
    build_s: float  # building the processes (for the stock graph: lowering convs to matrices)
    total_s: float
    peak_bytes: int | None  # None: the run ended before the memory sampler saw it
    synops: int
    exact: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.synops / self.step_s if self.step_s > 0 else math.nan


def run_ours(spec: NetworkSpec, weights: dict[str, np.ndarray], image: np.ndarray,
             reference: Any | None, measure_memory: bool = False) -> LavaTiming:
    """Our builder (`run_lava`), its stepping time separated from the compile its first `run()` performs.

    With `measure_memory` a dense memory sampler runs alongside (it costs CPU: such a run is not for timing).
    """
    from spikereg_deploy.simulators.lava_builder import run_lava

    started = time.perf_counter()
    mem = PeakMemory(pause=1.0) if measure_memory else None
    with mem if mem is not None else contextlib.nullcontext(), compile_timer() as ct:
        run = run_lava(spec, weights, image, tag="fixed_pt", progress=False)
    total = time.perf_counter() - started
    synops = sum(c.synops for c in run.counts.values())
    exact = None
    if reference is not None:
        exact = bool(np.array_equal(run.readout_sum, reference.readout_sum)) and all(
            run.counts[k].spikes == c.spikes and run.counts[k].synops == c.synops for k, c in reference.counts.items())
    return LavaTiming("lava (ours)", image.shape[1], run.wall_time_s - ct["compile_s"], ct["compile_s"],
                      total - run.wall_time_s, total, mem.added if mem is not None else None, synops, exact)


def best_ours(spec: NetworkSpec, weights: dict[str, np.ndarray], image: np.ndarray, reference: Any | None,
              repeats: int) -> LavaTiming:
    """Our run with the least stepping time of `repeats` (it takes seconds; the stock graph runs once), and the
    peak memory of one more, untimed run under a dense sampler."""
    runs = [run_ours(spec, weights, image, reference) for _ in range(max(1, repeats))]
    best = min(runs, key=lambda r: r.step_s)
    best.details["step_s_all"] = [r.step_s for r in runs]
    best.peak_bytes = run_ours(spec, weights, image, None, measure_memory=True).peak_bytes
    return best


def run_stock(spec: NetworkSpec, weights: dict[str, np.ndarray], image: np.ndarray, reference: Any,
              synops: int, sampler_pause: float = 9.0) -> LavaTiming:
    """The same network from lava-nc's stock processes only (`simulators.stock_lava`); returns timing and whether
    it matches the reference engine's integers. Stock processes count no SynOps, so the events/s use the SynOps
    measured for the same spikes."""
    started = time.perf_counter()
    with PeakMemory(pause=sampler_pause) as mem:
        run = run_stock_lava(spec, weights, image)
    total = time.perf_counter() - started
    readout_equal, spikes_equal = run.agreement(reference)
    details = {"nnz": run.nnz, "readout_equal": readout_equal, "spike_counts_equal": spikes_equal,
               "csr_bytes": run.nnz * CSR_BYTES_PER_NNZ}
    return LavaTiming("lava stock Sparse", image.shape[1], run.step_s, run.compile_s, run.build_s, total,
                      mem.added, synops, readout_equal and all(spikes_equal.values()), details)


# ---------------------------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------------------------
#: First guesses for the stock graph before it has been measured in this run (measured on this project's 2-core
#: machine at 16^3: 63 s of stepping and a 3.7 GB peak for 7.5e7 synapses); every measurement replaces them.
STOCK_GUESS_STEP_S_PER_NNZ = 9e-7
STOCK_GUESS_BYTES_PER_NNZ = 55.0
#: A stock run stepping for less than this gets too few memory samples: it is repeated, untimed, densely sampled.
SHORT_STOCK_RUN_S = 30.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", help="n for the Lava comparison (n^3 volumes) "
                        "[default 16 24 32; --quick: 16]")
    parser.add_argument("--quick", action="store_true", help="a < 2 minute version")
    parser.add_argument("--engine-sizes", type=int, nargs="+",
                        help="n for reference engine vs dense ANN [default 16 32 64; --quick: 16 32]")
    parser.add_argument("--extra-lava-sizes", type=int, nargs="+",
                        help="more n for our Lava graph only, for the 10-minute extrapolation [default 48 64]")
    parser.add_argument("--extra-reference-sizes", type=int, nargs="+",
                        help="more n for the reference engine only, for the extrapolation [default 96]")
    parser.add_argument("--stock-fit-size", type=int, default=8,
                        help="also run the stock graph at this small n (a second point for its fit; 0: off)")
    parser.add_argument("--stock-memory-limit-gb", type=float, default=8.0,
                        help="skip stock sizes whose estimated peak memory exceeds this")
    parser.add_argument("--stock-time-limit-s", type=float,
                        help="skip stock sizes whose predicted stepping time exceeds this [default 300; --quick 20]")
    parser.add_argument("--repeats", type=int, help="timing repeats, best of (part 2, and our Lava graph up to 32^3) "
                        "[default 3; --quick 1]")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "sizes": [16] if quick else [16, 24, 32],
        "engine_sizes": [16, 32] if quick else [16, 32, 64],
        "extra_lava_sizes": [] if quick else [48, 64],
        "extra_reference_sizes": [] if quick else [96],
        "stock_time_limit_s": 20.0 if quick else 300.0,
        "repeats": 1 if quick else 3,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import version

    from spikereg_deploy.training.snn import seeded_model

    wall_started = time.perf_counter()
    load_start = os.getloadavg()
    model = seeded_model(seed=0)
    spec, weights = model.spec, model.integer_weights()
    ram = int(ram_bytes() * RAM_USABLE)
    mem_limit = int(args.stock_memory_limit_gb * 2**30)
    print(f"network: default U-Net (seeded_model(seed=0)), T={spec.time_steps}, Lava steps T+depth={spec.run_steps}; "
          f"machine: {os.cpu_count()} CPUs, {fmt_bytes(ram_bytes())} RAM ({RAM_USABLE:.0%} usable)", flush=True)

    # -- part 1 (and the Lava points of part 3): torch stays on 1 thread while Lava forks -------------------------
    lava_sizes = sorted(set(args.sizes) | ({args.stock_fit_size} if args.stock_fit_size else set()))
    part1: list[dict[str, Any]] = []
    ours_points: list[tuple[int, float]] = []
    stock_points: list[tuple[int, float]] = []
    stock_step_points: list[tuple[float, float]] = []  # (nnz, stepping s)
    stock_mem_points: list[tuple[float, float]] = []  # (nnz, peak bytes)
    for n in lava_sizes:
        image = random_image(spec, n)
        nnz = stock_nnz(spec, n)
        a_t, b_t = fit_with_guess(stock_step_points, STOCK_GUESS_STEP_S_PER_NNZ)
        a_m, b_m = fit_with_guess(stock_mem_points, STOCK_GUESS_BYTES_PER_NNZ)
        est_step, est_mem = a_t + b_t * nnz, a_m + b_m * nnz
        skip = None
        if est_mem > mem_limit:
            skip = f"estimated peak {fmt_bytes(est_mem)} > {args.stock_memory_limit_gb:g} GB limit"
        elif est_step > args.stock_time_limit_s:
            skip = f"predicted stepping {est_step:.0f} s > {args.stock_time_limit_s:g} s limit"
        print(f"[1] n={n}: reference run ...", flush=True)
        reference = IntegerNetwork(spec, weights).run(image, record_spikes=skip is None)
        synops = sum(c.synops for c in reference.counts.values())
        print(f"[1] n={n}: our Lava graph ...", flush=True)
        ours = best_ours(spec, weights, image, reference, args.repeats if n <= 32 else 1)
        ours_points.append((n, ours.total_s))
        row: dict[str, Any] = {"n": n, "synops": synops, "stock_nnz": nnz, "stock_csr_bytes": nnz * CSR_BYTES_PER_NNZ,
                               "stock_estimated_step_s": est_step, "stock_estimated_peak_bytes": est_mem,
                               "ours": _timing_dict(ours), "stock": None, "stock_skipped": skip}
        if skip is None:
            print(f"[1] n={n}: stock Sparse graph ({nnz:.2e} synapses, ~{est_step:.0f} s) ...", flush=True)
            stock = run_stock(spec, weights, image, reference, synops)
            if stock.step_s < SHORT_STOCK_RUN_S:  # too short for the sparse sampler: measure memory once more
                again = run_stock(spec, weights, image, reference, synops, sampler_pause=1.0)
                peaks = [p for p in (stock.peak_bytes, again.peak_bytes) if p is not None]
                stock.peak_bytes = max(peaks) if peaks else None
                stock.details["memory_from_untimed_rerun"] = True
            stock_points.append((n, stock.total_s))
            stock_step_points.append((nnz, stock.step_s))
            if stock.peak_bytes is not None:
                stock_mem_points.append((nnz, stock.peak_bytes))
            row["stock"] = _timing_dict(stock)
            row["ratio_events_per_s"] = ours.events_per_s / stock.events_per_s
        else:
            print(f"[1] n={n}: stock Sparse graph skipped: {skip}", flush=True)
        del reference
        part1.append(row)
    for n in args.extra_lava_sizes:
        print(f"[3] n={n}: our Lava graph ...", flush=True)
        ours = best_ours(spec, weights, random_image(spec, n), None, 1)
        ours_points.append((n, ours.total_s))
        part1.append({"n": n, "synops": ours.synops, "ours": _timing_dict(ours), "stock": None,
                      "stock_skipped": "extrapolation point for our graph only", "part3_only": True})

    # -- part 2: torch on 2 threads (no Lava run may follow) ---------------------------------------------------
    torch.set_num_threads(TORCH_THREADS)
    part2: list[EngineTiming] = []
    for n in args.engine_sizes:
        print(f"[2] n={n}: reference engine vs dense ANN ...", flush=True)
        part2.append(time_reference_vs_ann(spec, weights, n, args.repeats if n <= 32 else 1))
    reference_points = [(t.n, t.reference_s) for t in part2]
    for n in args.extra_reference_sizes:
        print(f"[3] n={n}: reference engine ...", flush=True)
        image = random_image(spec, n)
        net = IntegerNetwork(spec, weights)
        reference_points.append((n, best_time(lambda net=net, image=image: net.run(image), 1)))

    # -- part 3 ---------------------------------------------------------------------------------------------------
    stock_memory = fit_with_guess(stock_mem_points, STOCK_GUESS_BYTES_PER_NNZ)
    part3 = [capacity(spec, "lava (ours)", ours_points, stock_memory, ram)]
    if stock_points:
        part3.append(capacity(spec, "lava stock Sparse", stock_points, stock_memory, ram))
    part3.append(capacity(spec, "reference engine", sorted(reference_points), stock_memory, ram))

    return {
        "format": "spikereg-bench-simulators", "version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "ram_bytes": ram_bytes(), "ram_usable_bytes": ram,
                    "python": platform.python_version(),
                    "platform": platform.platform(), "torch": torch.__version__, "lava-nc": version("lava-nc"),
                    "scipy": version("scipy"), "numpy": np.__version__},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "network": {"model": "seeded_model(seed=0)", "fingerprint": spec.architecture_fingerprint(),
                    "time_steps": spec.time_steps, "run_steps": spec.run_steps,
                    "image": "uniform random in [0, 1], shape (2, n, n, n), seed 0"},
        "part1_lava_events": part1,
        "part2_reference_vs_ann": [dict(t.__dict__, slowdown=t.slowdown) for t in part2],
        "part3_capacity": [dict(c.__dict__) for c in part3],
        "targets": {"events_ratio_min": TARGET_EVENTS_RATIO, "reference_slowdown_max": TARGET_REFERENCE_SLOWDOWN},
        "benchmark_wall_s": time.perf_counter() - wall_started,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "notes": NOTES,
    }


def _timing_dict(t: LavaTiming) -> dict[str, Any]:
    return dict(t.__dict__, events_per_s=t.events_per_s)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_benchmark(args)
    print()
    print(format_tables(result))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.output, clean_json(result))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
