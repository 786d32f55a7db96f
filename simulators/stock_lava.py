"""The same network built only from lava-nc's stock processes: the baseline our Lava graph is measured against.

Every edge becomes a `scipy.sparse` synapse matrix in a stock `Sparse` process (`DelaySparse` for skips with an
axonal delay), every spiking layer a flat `LIF`, the analog input an io `RingBuffer` source and the readout an io
`RingBuffer` sink. It needs no process model of ours except one counter per layer for checking spikes, and it
stores every synapse, which is what makes it slow and large: that is the point of the comparison.
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from spikereg_deploy import fixed_point as fx
from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.fanout import fanout_map
from spikereg_deploy.network import LayerSpec, NetworkSpec


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
# the stock process graph
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class StockRun:
    """What a stock run gives back: the readout's integer sum over its T-step window, each spiking layer's
    per-neuron spike counts over its model window (flattened (C, D, H, W)), and where the time went."""

    readout_sum: np.ndarray  # int64, (C, D, H, W) of the readout
    spike_counts: dict[str, np.ndarray]  # per spiking layer: int64 (neurons,)
    nnz: int  # synapses stored over all edges
    build_s: float  # building the processes, convs lowered to matrices included
    compile_s: float  # compile + runtime start-up (forking the process models)
    step_s: float  # the T + depth steps

    def agreement(self, reference: Any) -> tuple[bool, dict[str, bool]]:
        """(readout sums equal, spike counts equal per layer) against a reference run (`IntegerNetwork.run` with
        `record_spikes=True`)."""
        readout_equal = bool(np.array_equal(self.readout_sum, reference.readout_sum))
        spikes_equal = {name: bool(np.array_equal(counts, np.stack(reference.spikes[name]).sum(axis=0).ravel()))
                        for name, counts in self.spike_counts.items()}
        return readout_equal, spikes_equal


#: lava-nc 0.10's Sparse / Dense ports are 24 bits wide: a graded message of up to 24 bits fits.
STOCK_MESSAGE_BITS = 24


def run_stock_lava(spec: NetworkSpec, weights: dict[str, np.ndarray], image: np.ndarray) -> StockRun:
    """Build the network from lava-nc's stock processes, run it in `Loihi2SimCfg(select_tag='fixed_pt')`.

    Graph: io `RingBuffer` source sends the 8-bit payloads (graded, 24-bit messages) for T steps, zeros after; the
    analog edge is a graded `Sparse` with weight_exp=-8 (its bit-accurate model shifts the sum right, as our `>> 8`);
    spiking edges are binary `Sparse` (graded ones, from CUBA-MT, take the payload: `num_message_bits` = its bits),
    skips `DelaySparse` with the edge's axonal delay; neurons are each model's own Lava process (`LIF` for CUBA);
    the readout `Sparse` feeds an io `RingBuffer` sink of T slots, which holds exactly the readout's window at the end.
    For checking only, each LIF also feeds a `ReadoutAccumulator` that writes per-neuron spike counts over the
    layer's model window to a file (Var.get would take minutes). Stock processes count no SynOps.
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.sparse.process import DelaySparse, Sparse

    from .lava_builder import load_lava_processes, message_bits
    from .lava_models.processes import ReadoutAccumulator

    load_lava_processes()  # the project's own neuron processes (e.g. CUBA-SR) register with their models
    net = IntegerNetwork(spec, weights)
    if net.biases:  # its LIFs would need the host's bias writes at each layer's start step (lava_builder does them)
        raise SpikeRegError(f"the stock-process baseline runs networks without layer biases; layer(s) "
                            f"{', '.join(net.biases)} have one (use the project's Lava graph)")
    geo = spec.geometry(image.shape[1:])
    depth = spec.depths()
    t_steps, run_steps = spec.time_steps, spec.run_steps
    with tempfile.TemporaryDirectory(prefix="spikereg-stock-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        payload = np.asarray(fx.quantize_input(np.asarray(image, dtype=np.float64)), dtype=np.int32).ravel()
        data = np.zeros((payload.size, run_steps), dtype=np.int32)
        data[:, :t_steps] = payload[:, None]
        source = Source(data=data)
        out_ports: dict[str, Any] = {spec.input_layer.name: source.s_out}
        in_ports: dict[str, Any] = {}
        counters: dict[str, Path] = {}
        sink = readout = None
        for layer in spec.layers[1:]:
            neurons = geo[layer.name].neurons
            if layer.kind == "readout":
                sink, readout = Sink(shape=(neurons,), buffer=t_steps), layer
                in_ports[layer.name] = sink.a_in
                continue
            assert layer.neuron is not None
            lif = layer.neuron.lava_process((neurons,), "fixed_pt", layer.name)  # the model's own Lava process
            in_ports[layer.name] = lif.a_in
            out_ports[layer.name] = lif.s_out
            path = work / f"count_{layer.name}.npy"
            acc = ReadoutAccumulator(shape=(neurons,), window_start=depth[layer.name] + 1, window_len=t_steps,
                                     out_path=str(path))
            lif.s_out.connect(acc.a_in)
            counters[layer.name] = path
        assert sink is not None and readout is not None
        nnz = 0
        for edge in net.edges:
            dst = spec.layer(edge.dst)
            src_shape, dst_shape = geo[edge.src].out_shape, geo[edge.dst].out_shape
            matrix = conv_matrix(dst, net.edge_weights[(edge.src, edge.dst)], src_shape, dst_shape)
            nnz += matrix.nnz
            analog = spec.layer(edge.src).kind == "input"
            kwargs: dict[str, Any] = {"num_message_bits": message_bits(edge, STOCK_MESSAGE_BITS),
                                      "name": f"{edge.src}->{edge.dst}"}
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
        compile_started = time.perf_counter()
        source.create_runtime(run_cfg=cfg)
        compile_s = time.perf_counter() - compile_started
        try:
            step_started = time.perf_counter()
            for _ in range(run_steps):
                source.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            step_s = time.perf_counter() - step_started
            readout_window = np.asarray(sink.data.get(), dtype=np.int64)
        finally:
            source.stop()
        spike_counts = {name: np.load(path).astype(np.int64) for name, path in counters.items()}
    readout_sum = readout_window.sum(axis=-1).reshape(readout.out_channels, *geo[readout.name].out_shape)
    return StockRun(readout_sum, spike_counts, nnz, build_s, compile_s, step_s)
