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
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Lava forks one OS process per process model; a torch thread pool started before the fork hangs them (FACTS.md).
torch.set_num_threads(1)

import scipy.sparse as sp  # noqa: E402

from spikereg_deploy.engine import IntegerNetwork  # noqa: E402
from spikereg_deploy.fanout import fanout_map  # noqa: E402
from spikereg_deploy.network import LayerSpec, NetworkSpec  # noqa: E402

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "simulators.json"
TEN_MINUTES_S = 600.0
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
def _tree_pids(root: int) -> list[int]:
    """The root process and all its descendants: Lava's process models run in forked children."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{entry}/stat") as fh:
                parent_of[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
    found, frontier = [root], {root}
    while frontier:
        frontier = {pid for pid, ppid in parent_of.items() if ppid in frontier}
        found += sorted(frontier)
    return found


def _pss_bytes(pid: int) -> int:
    """Proportional set size: copy-on-write pages shared by Lava's forked children count once overall."""
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakMemory:
    """Samples the PSS of this process tree in a thread; `peak - baseline` is what a run added at its worst.

    Reading smaps of ~30 forked processes takes up to a second, which would slow a run being timed on 2 cores:
    after each sample the sampler waits `pause` times as long as the sample took (9: about 10 % of one core, for
    timed runs; 1 for runs made only to measure memory). Other users of the machine do not count, as they would in
    MemAvailable. A sparse sampler can miss a short peak.
    """

    def __init__(self, pause: float = 9.0, min_interval_s: float = 0.1) -> None:
        self.pause = pause
        self.min_interval_s = min_interval_s
        self.peak = 0
        self.baseline = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> float:
        started = time.perf_counter()
        self.peak = max(self.peak, sum(_pss_bytes(pid) for pid in _tree_pids(os.getpid())))
        self.samples += 1
        return time.perf_counter() - started

    def _loop(self) -> None:
        while not self._stop.is_set():
            cost = self._sample()
            self._stop.wait(max(self.min_interval_s, self.pause * cost))

    def __enter__(self) -> PeakMemory:
        self._sample()
        self.baseline = self.peak
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def added(self) -> int | None:
        """Peak above the baseline, or None when fewer than 3 samples fell inside the run."""
        return self.peak - self.baseline if self.samples >= 3 else None


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


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` calls: the least disturbed by other load on a small machine."""
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def random_image(spec: NetworkSpec, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((spec.input_channels, n, n, n)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# 3-D (transposed) convolutions as scipy.sparse matrices
# ---------------------------------------------------------------------------------------------------------------
def _axis_pairs(kind: str, n_in: int, n_out: int, k: int, s: int, p: int, offset: int) -> tuple[np.ndarray, ...]:
    """(output index, input index) pairs along one axis that kernel tap `offset` connects (torch's arithmetic)."""
    if kind == "convT":  # o = i * s - p + offset
        i = np.arange(n_in)
        o = i * s - p + offset
    else:  # i = o * s - p + offset
        o = np.arange(n_out)
        i = o * s - p + offset
    keep = (o >= 0) & (o < n_out) & (i >= 0) & (i < n_in)
    return o[keep], i[keep]


def _flat(a: np.ndarray, b: np.ndarray, c: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    return ((a[:, None, None] * shape[1] + b[None, :, None]) * shape[2] + c[None, None, :]).ravel()


def conv_matrix(layer: LayerSpec, weight: np.ndarray, in_shape: tuple[int, int, int],
                out_shape: tuple[int, int, int]) -> sp.csr_matrix:
    """The synapse matrix of one edge: rows = flattened (Cout, D, H, W), cols = flattened (Cin, D, H, W).

    Built tap by tap: each kernel offset connects a box of output positions to a shifted box of inputs, so indices
    come from broadcasting small per-axis index vectors, never from a loop over synapses. Zero weights are dropped
    (they reach nobody on Loihi either).
    """
    w = np.asarray(weight, dtype=np.int32)
    if layer.kind == "convT":
        w = np.swapaxes(w, 0, 1)  # (Cin, Cout, k..) -> (Cout, Cin, k..)
    c_out, c_in = w.shape[:2]
    n_in_sp, n_out_sp = math.prod(in_shape), math.prod(out_shape)
    taps = []
    for offsets in np.ndindex(*layer.kernel):
        pairs = [_axis_pairs(layer.kind, n_in, n_out, k, s, p, off) for n_in, n_out, k, s, p, off in
                 zip(in_shape, out_shape, layer.kernel, layer.stride, layer.padding, offsets, strict=True)]
        if any(len(o) == 0 for o, _ in pairs):
            continue
        tap = w[(slice(None), slice(None), *offsets)]
        co, ci = np.nonzero(tap)
        if len(co):
            taps.append((pairs, co, ci, tap[co, ci]))
    nnz = sum(len(co) * math.prod(len(o) for o, _ in pairs) for pairs, co, ci, _ in taps)
    index_dtype = np.int32 if max(c_out * n_out_sp, c_in * n_in_sp, nnz) < 2**31 else np.int64
    rows = np.empty(nnz, dtype=index_dtype)
    cols = np.empty(nnz, dtype=index_dtype)
    data = np.empty(nnz, dtype=np.int32)
    at = 0
    for pairs, co, ci, values in taps:
        o_flat = _flat(pairs[0][0], pairs[1][0], pairs[2][0], out_shape).astype(index_dtype)
        i_flat = _flat(pairs[0][1], pairs[1][1], pairs[2][1], in_shape).astype(index_dtype)
        size = len(co) * len(o_flat)
        rows[at:at + size].reshape(len(co), -1)[:] = co.astype(index_dtype)[:, None] * n_out_sp + o_flat[None, :]
        cols[at:at + size].reshape(len(co), -1)[:] = ci.astype(index_dtype)[:, None] * n_in_sp + i_flat[None, :]
        data[at:at + size].reshape(len(co), -1)[:] = values[:, None]
        at += size
    matrix = sp.coo_matrix((data, (rows, cols)), shape=(c_out * n_out_sp, c_in * n_in_sp)).tocsr()
    del rows, cols, data
    return matrix


def stock_nnz(spec: NetworkSpec, n: int) -> int:
    """Synapses the stock graph stores at n^3 (every edge's exact fan-out summed; zero weights included)."""
    geo = spec.geometry((n, n, n))
    return sum(e.channels * int(fanout_map(spec.layer(e.dst), geo[e.src].out_shape, geo[e.dst].out_shape).sum())
               for e in spec.edges())


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


def _stock_lif(layer: LayerSpec, neurons: int) -> Any:
    from lava.proc.lif.process import LIF

    n = layer.neuron
    assert n is not None
    # Same parameters as our builder: lava-nc's bit-accurate LIF decays u by (du + 1).
    return LIF(shape=(neurons,), du=n.i_decay - 1, dv=n.v_decay, vth=n.vth_mant, bias_mant=0, bias_exp=6,
               name=layer.name)


def run_stock(spec: NetworkSpec, weights: dict[str, np.ndarray], image: np.ndarray, reference: Any,
              synops: int, sampler_pause: float = 9.0) -> LavaTiming:
    """The same network from lava-nc's stock processes only; returns timing and whether it matches our integers.

    Graph: io `RingBuffer` source sends the 8-bit payloads (graded, 24-bit messages) for T steps, zeros after; the
    analog edge is a graded `Sparse` with weight_exp=-8 (its bit-accurate model shifts the sum right, as our `>> 8`);
    spiking edges are binary `Sparse`, skips `DelaySparse` with the edge's axonal delay; neurons are flat `LIF`s;
    the readout `Sparse` feeds an io `RingBuffer` sink of T slots, which holds exactly the readout's window at the end.
    Verification only: each LIF also feeds a `ReadoutAccumulator` that writes per-neuron spike counts over the
    layer's model window to a file (Var.get would take minutes); stock processes count no SynOps, so the events/s
    use the SynOps measured for the same spikes.
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.sparse.process import DelaySparse, Sparse

    from spikereg_deploy import fixed_point as fx
    from spikereg_deploy.simulators.lava_models.processes import ReadoutAccumulator

    net = IntegerNetwork(spec, weights)
    geo = spec.geometry(image.shape[1:])
    depth = spec.depths()
    t_steps, run_steps = spec.time_steps, spec.run_steps
    tmp = tempfile.TemporaryDirectory(prefix="bench-stock-")
    work = Path(tmp.name)
    started = time.perf_counter()
    with PeakMemory(pause=sampler_pause) as mem, compile_timer() as ct:
        payload = np.asarray(fx.quantize_input(np.asarray(image, dtype=np.float64)), dtype=np.int32).ravel()
        data = np.zeros((payload.size, run_steps), dtype=np.int32)
        data[:, :t_steps] = payload[:, None]
        source = Source(data=data)
        out_ports: dict[str, Any] = {spec.input_layer.name: source.s_out}
        in_ports: dict[str, Any] = {}
        counters: dict[str, str] = {}
        sink = None
        for layer in spec.layers[1:]:
            neurons = geo[layer.name].neurons
            if layer.kind == "readout":
                sink = Sink(shape=(neurons,), buffer=t_steps)
                in_ports[layer.name] = sink.a_in
                continue
            lif = _stock_lif(layer, neurons)
            in_ports[layer.name] = lif.a_in
            out_ports[layer.name] = lif.s_out
            path = str(work / f"count_{layer.name}.npy")
            acc = ReadoutAccumulator(shape=(neurons,), window_start=depth[layer.name] + 1, window_len=t_steps,
                                     out_path=path)
            lif.s_out.connect(acc.a_in)
            counters[layer.name] = path
        nnz = 0
        for edge in net.edges:
            dst = spec.layer(edge.dst)
            src_shape, dst_shape = geo[edge.src].out_shape, geo[edge.dst].out_shape
            matrix = conv_matrix(dst, net.edge_weights[(edge.src, edge.dst)], src_shape, dst_shape)
            nnz += matrix.nnz
            analog = spec.layer(edge.src).kind == "input"
            kwargs: dict[str, Any] = {"num_message_bits": 24 if analog else 0, "name": f"{edge.src}->{edge.dst}"}
            if analog:
                kwargs["weight_exp"] = -fx.INPUT_SHIFT
            if edge.delay:
                # A delay per stored synapse (same pattern as the weights): an int here would make Lava expand it to
                # a dense N_out x N_in matrix.
                delays = sp.csr_matrix((np.full(matrix.nnz, edge.delay, dtype=np.int64), matrix.indices,
                                        matrix.indptr), shape=matrix.shape)
                syn = DelaySparse(weights=matrix, delays=delays, max_delay=edge.delay, **kwargs)
                del delays
            else:
                syn = Sparse(weights=matrix, **kwargs)
            del matrix
            out_ports[edge.src].connect(syn.s_in)
            syn.a_out.connect(in_ports[edge.dst])
        build_s = time.perf_counter() - started
        cfg = Loihi2SimCfg(select_tag="fixed_pt")
        source.create_runtime(run_cfg=cfg)
        try:
            step_started = time.perf_counter()
            for _ in range(run_steps):
                source.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            step_s = time.perf_counter() - step_started
            assert sink is not None
            readout_window = np.asarray(sink.data.get(), dtype=np.int64)
        finally:
            source.stop()
    total = time.perf_counter() - started
    readout_sum = readout_window.sum(axis=-1).reshape(reference.readout_sum.shape)
    readout_equal = bool(np.array_equal(readout_sum, reference.readout_sum))
    spikes_equal = {}
    for name, path in counters.items():
        per_neuron = np.load(path).astype(np.int64)
        expected = np.stack(reference.spikes[name]).sum(axis=0).ravel()
        spikes_equal[name] = bool(np.array_equal(per_neuron, expected))
    tmp.cleanup()
    details = {"nnz": nnz, "readout_equal": readout_equal, "spike_counts_equal": spikes_equal,
               "csr_bytes": nnz * CSR_BYTES_PER_NNZ}
    return LavaTiming("lava stock Sparse", image.shape[1], step_s, ct["compile_s"], build_s, total,
                      mem.added, synops, readout_equal and all(spikes_equal.values()), details)


# ---------------------------------------------------------------------------------------------------------------
# part 2: the reference engine against a dense ANN of the same graph
# ---------------------------------------------------------------------------------------------------------------
class DenseAnn(torch.nn.Module):
    """The equivalent ANN: the spec's layer graph with float32 convs, ReLU for spiking layers, concat for skips.

    Weights are the integer mantissas / 64 (the float model's values), so the arithmetic is the real one.
    """

    def __init__(self, spec: NetworkSpec, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.spec = spec
        self.convs = torch.nn.ModuleDict()
        for layer in spec.layers[1:]:
            cin = spec.in_channels(layer.name)
            conv: torch.nn.Module
            if layer.kind == "convT":
                conv = torch.nn.ConvTranspose3d(cin, layer.out_channels, layer.kernel, layer.stride, layer.padding,
                                                layer.output_padding, bias=False)
            else:
                conv = torch.nn.Conv3d(cin, layer.out_channels, layer.kernel, layer.stride, layer.padding, bias=False)
            with torch.no_grad():
                conv.weight.copy_(torch.as_tensor(np.asarray(weights[layer.name], dtype=np.float32) / 64))
            self.convs[layer.name] = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = {self.spec.input_layer.name: x}
        y = x
        for layer in self.spec.layers[1:]:
            srcs = [outputs[s] for s in layer.inputs]
            y = self.convs[layer.name](srcs[0] if len(srcs) == 1 else torch.cat(srcs, dim=1))
            outputs[layer.name] = torch.relu(y) if layer.spiking else y
        return y


@dataclass
class EngineTiming:
    n: int
    reference_s: float
    ann_s: float
    synops: int
    macs: int

    @property
    def slowdown(self) -> float:
        return self.reference_s / self.ann_s


def time_reference_vs_ann(spec: NetworkSpec, weights: dict[str, np.ndarray], n: int, repeats: int) -> EngineTiming:
    """Best-of-`repeats` wall time of one reference run (T steps) and of T dense ANN forwards, same threads."""
    image = random_image(spec, n)
    net = IntegerNetwork(spec, weights)
    ann = DenseAnn(spec, weights).eval()
    x = torch.as_tensor(image)[None]
    result: dict[str, Any] = {}

    def reference() -> None:
        result["run"] = net.run(image)

    def dense() -> None:
        with torch.no_grad():
            for _ in range(spec.time_steps):
                ann(x)

    if n <= 32:  # warm-up: thread pool start and conv algorithm choice happen on a first call
        reference()
        dense()
    ref_s = best_time(reference, repeats)
    ann_s = best_time(dense, repeats)
    synops = sum(c.synops for c in result["run"].counts.values())
    macs = spec.time_steps * sum(g.macs for g in spec.geometry((n, n, n)).values())
    return EngineTiming(n, ref_s, ann_s, synops, macs)


# ---------------------------------------------------------------------------------------------------------------
# part 3: the largest volume per engine in 10 minutes, extrapolated
# ---------------------------------------------------------------------------------------------------------------
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


def ram_bytes() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def memory_estimator(spec: NetworkSpec, engine: str,
                     stock_memory: tuple[float, float]) -> tuple[Callable[[int], int], str]:
    """Peak-memory estimate per n for an engine, and where it comes from."""
    if engine == "lava stock Sparse":
        base, per_nnz = stock_memory
        return (lambda n: int(base + stock_nnz(spec, n) * per_nnz),
                f"{_fmt_bytes(base)} + synapses x {per_nnz:.1f} B (fitted to the measured peaks)")
    try:
        from spikereg_deploy.simulators.simulation import estimate_memory
    except ImportError:
        estimate_memory = None
    key = "lava" if engine.startswith("lava") else "reference"
    if estimate_memory is not None:
        return (lambda n: int(estimate_memory(spec, (n, n, n), key)),
                f"spikereg_deploy.simulators.simulation.estimate_memory(engine={key!r})")
    from spikereg_deploy.engine import estimate_engine_memory

    if key == "reference":
        return lambda n: 2 * estimate_engine_memory(spec, (n, n, n)), "2 x engine.estimate_engine_memory"
    return (lambda n: 120 * 2**20 + 350 * sum(g.neurons for g in spec.geometry((n, n, n)).values()),
            "120 MB + 350 B per neuron")


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


# ---------------------------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------------------------
#: First guesses for the stock graph before it has been measured in this run (measured on this project's 2-core
#: machine at 16^3: 63 s of stepping and a 3.7 GB peak for 7.5e7 synapses); every measurement replaces them.
STOCK_GUESS_STEP_S_PER_NNZ = 9e-7
STOCK_GUESS_BYTES_PER_NNZ = 55.0
#: A stock run stepping for less than this gets too few memory samples: it is repeated, untimed, densely sampled.
SHORT_STOCK_RUN_S = 30.0


def fit_with_guess(points: list[tuple[float, float]], guess_slope: float) -> tuple[float, float]:
    """Like `fit_linear`, but one point only fixes the start-up: its slope comes from the guess."""
    if not points:
        return 0.0, guess_slope
    if len(points) == 1:
        x, y = points[0]
        return max(0.0, y - guess_slope * x), guess_slope
    return fit_linear(points)


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


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _mem(n: int | None) -> str:
    return "-" if n is None else _fmt_bytes(n)


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "NO")


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
          f"machine: {os.cpu_count()} CPUs, {_fmt_bytes(ram_bytes())} RAM ({RAM_USABLE:.0%} usable)", flush=True)

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
            skip = f"estimated peak {_fmt_bytes(est_mem)} > {args.stock_memory_limit_gb:g} GB limit"
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


NOTES = [
    "events/s = SynOps measured over the T model steps (each arriving spike x the synapses it actually reaches) / "
    "wall time of the T+depth Lava steps (compile and runtime start-up excluded, timed apart by wrapping "
    "AbstractProcess.create_runtime); both graphs step one RunSteps(1) call per step.",
    "stock graph: lava-nc Sparse (binary), Sparse graded (num_message_bits=24, weight_exp=-8) for the analog input, "
    "DelaySparse for skips, LIF(du=iDecay-1, dv=vDecay, vth=vThMant, bias_exp=6), io RingBuffer source and sink; "
    "stock processes count no events, so its events/s use the SynOps of the same spikes (valid where it is exact).",
    "stock 'exact': per-neuron spike counts over the model window of every layer and the readout sum (hence the "
    "displacement) equal the reference engine's integers; ours is tested spike for spike in tests/test_lava.py and "
    "here checked on readout, spikes and SynOps per layer.",
    "the stock run carries one extra sink per LIF for that check (a file writer), which adds a little to its time.",
    "peak memory = largest sampled PSS of this process tree (Lava's forked models included) above the value "
    "before the run. Timed runs carry no dense sampler: ours is measured in one extra untimed run; the stock run "
    "samples sparsely (~10 % of one core), and a stock run stepping under 30 s is repeated untimed for memory.",
    "the machine is shared: the load average before and after is recorded; timings are best of repeats where "
    "affordable (the stock graph runs once).",
    "part 2: reference = IntegerNetwork.run (T steps with event counting); ANN = T forwards of float32 "
    "Conv3d/ConvTranspose3d + ReLU of the same graph, no grad; both torch.set_num_threads(2), best of repeats.",
    "part 3: nothing runs for 10 minutes; time = a + b*n^3 fitted to the measured whole-run times, memory from "
    "the estimators named per row; n is rounded down to a size the network accepts.",
]


def _timing_dict(t: LavaTiming) -> dict[str, Any]:
    return dict(t.__dict__, events_per_s=t.events_per_s)


def format_tables(result: dict[str, Any]) -> str:
    lines = [f"== 1. synaptic events/s: our Lava graph vs lava-nc stock Sparse (Loihi2SimCfg fixed_pt, "
             f"{result['network']['run_steps']} steps) =="]
    head = (f"{'n':>4}  {'engine':<18} {'SynOps':>10} {'step s':>8} {'compile s':>9} {'build s':>8} "
            f"{'total s':>8} {'events/s':>10} {'peak mem':>10}  exact")
    lines.append(head)
    for row in result["part1_lava_events"]:
        for key in ("ours", "stock"):
            t = row[key]
            if t is None:
                continue
            lines.append(f"{row['n']:>4}  {t['engine']:<18} {t['synops']:>10.3e} {t['step_s']:>8.2f} "
                         f"{t['compile_s']:>9.2f} {t['build_s']:>8.2f} {t['total_s']:>8.2f} "
                         f"{t['events_per_s']:>10.3e} {_mem(t['peak_bytes']):>10}  {_yes(t['exact'])}")
        if row.get("part3_only"):
            continue
        if row["stock"] is not None:
            ratio = row["ratio_events_per_s"]
            verdict = "met" if ratio >= TARGET_EVENTS_RATIO else "NOT met"
            lines.append(f"      ratio ours/stock events/s = {ratio:.1f}x (target >= {TARGET_EVENTS_RATIO:g}x: "
                         f"{verdict}); stock reproduces our spikes and displacement: "
                         f"{_yes(row['stock']['exact'])}; stock synapses {row['stock']['details']['nnz']:.3e}")
        else:
            lines.append(f"      stock Sparse skipped: {row['stock_skipped']} ({row['stock_nnz']:.3e} synapses, "
                         f"CSR {_fmt_bytes(row['stock_csr_bytes'])} per copy)")
    lines.append("")
    lines.append("== 2. reference engine (IntegerNetwork.run) vs dense float32 ANN x T, 2 threads ==")
    lines.append(f"{'n':>4}  {'reference s':>11} {'ANN s':>8} {'ref/ANN':>8}  {'SynOps':>10} {'ANN MACs':>10}  "
                 f"target <= {TARGET_REFERENCE_SLOWDOWN:g}x")
    for t in result["part2_reference_vs_ann"]:
        verdict = "met" if t["slowdown"] <= TARGET_REFERENCE_SLOWDOWN else "NOT met"
        lines.append(f"{t['n']:>4}  {t['reference_s']:>11.3f} {t['ann_s']:>8.3f} {t['slowdown']:>7.2f}x  "
                     f"{t['synops']:>10.3e} {t['macs']:>10.3e}  {verdict}")
    lines.append("")
    lines.append("== 3. largest n^3 per engine in 10 minutes on this machine (EXTRAPOLATED, not run) ==")
    lines.append(f"{'engine':<18} {'measured n (s)':<34} {'start s':>7} {'us/voxel':>9} {'n(time)':>7} "
                 f"{'n(mem)':>6} {'n max':>5} {'binds':>6} {'pred s':>7} {'pred mem':>9}")
    for c in result["part3_capacity"]:
        measured = ", ".join(f"{n}:{s:.1f}" for n, s in c["measured"])
        n_mem = ">" + str(c["n_time"]) if c["n_memory"] is None else str(c["n_memory"])
        lines.append(f"{c['engine']:<18} {measured:<34} {c['startup_s']:>7.1f} {c['per_voxel_s'] * 1e6:>9.2f} "
                     f"{c['n_time']:>7} {n_mem:>6} {c['n_max']:>5} {c['limit']:>6} {c['predicted_s']:>7.0f} "
                     f"{_fmt_bytes(c['predicted_bytes']):>9}")
    for c in result["part3_capacity"]:
        lines.append(f"  memory estimate, {c['engine']}: {c['memory_source']}")
    load = result["load_average"]
    lines.append(f"benchmark wall time: {result['benchmark_wall_s']:.0f} s; 1-min load average "
                 f"{load['start'][0]:.1f} at start, {load['end'][0]:.1f} at end (2 CPUs, machine shared)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_benchmark(args)
    print()
    print(format_tables(result))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(_clean(result), indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to null, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    sys.exit(main())
