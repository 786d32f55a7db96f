"""Turn a network (spec + integer weights) into a Lava process graph, run it on the CPU, and gather the counts.

Each layer becomes the process its neuron model builds (`lava_process`: a lava-nc `LIF` for CUBA and IF, the project's
own process from `lava_models/` where lava-nc has none, e.g. CUBA-SR); each edge
of the graph becomes its own `Conv3dSynapse` feeding the neurons' input port, which sums them: a skip concatenation
costs no copy, as on Loihi. Skip synapses carry the axonal delay the description gives them, so the run equals the
model's computation shifted by each layer's depth.
"""
from __future__ import annotations

import importlib
import pkgutil
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikereg_deploy import fixed_point as fx
from spikereg_deploy.counting import LayerCounts, analog_input_macs, edge_fanout, neuron_updates
from spikereg_deploy.engine import FLOAT32_EXACT, IntegerNetwork, analog_shift, max_abs_row_sum
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.layer_bias import bias_start_step
from spikereg_deploy.network import Edge, LayerSpec, NetworkSpec
from spikereg_deploy.neurons.base import check_lava_tag
from spikereg_deploy.signals import deferred_signals, descendant_pids, kill_pids


@dataclass
class LavaRun:
    displacement: np.ndarray | None  # (3, D, H, W) voxels; None for a network without a readout (plain NetX)
    readout_sum: np.ndarray | None  # fixed_pt: int64 sum over T of the readout input; floating_pt: float64
    counts: dict[str, LayerCounts]
    time_steps: int
    run_steps: int
    tag: str
    wall_time_s: float
    spikes: dict[str, list[np.ndarray]] | None = None  # model-aligned (shift removed), if recorded
    output_spikes: np.ndarray | None = None  # without a readout: the last layer's spikes, bool (C, D, H, W, T)


def load_lava_processes() -> None:
    """Import every module of `lava_models/` under its package name, so that the project's own neuron processes
    register with their neuron models (`register_lava_process`): the core imports no stage, so it cannot fetch them.
    """
    from . import lava_models

    for info in pkgutil.iter_modules(lava_models.__path__):
        importlib.import_module(f"{lava_models.__name__}.{info.name}")


def run_lava(spec: NetworkSpec, weights: dict[str, np.ndarray], image: np.ndarray, *, tag: str = "fixed_pt",
             record_spikes: bool = False, progress: bool = True, workdir: str | None = None) -> LavaRun:
    """Build the process graph for one (C, D, H, W) image in [0, 1] (or, input_mode "spikes", a (C, D, H, W, T)
    spike train), run T + depth steps, return counts."""
    from spikereg_deploy.engine import check_run_input

    from .lava_models.processes import AnalogSource, Conv3dSynapse, ReadoutAccumulator, SpikeRecorder, SpikeSource

    load_lava_processes()
    check_lava_tag(tag)  # before any process is built
    torch.set_num_threads(1)  # before Lava forks: a started torch thread pool hangs the children
    net = IntegerNetwork(spec, weights)  # validates weights and splits them per edge
    check_run_input(spec, image)
    geo = spec.geometry(image.shape[1:4])
    depth = spec.depths()
    # input_mode "bias": the first layer's current is its neurons' bias from step 0, not an input synapse's output
    # one step later, so every layer runs one step earlier and no analog synapse or source exists.
    bias_mode = spec.input_mode == "bias"
    lead = 1 if bias_mode else 0
    # every biased layer's bias over its map (its own per-channel bias, plus the input current in "bias" mode)
    bias = {name: current.numpy() for name, current in
            net.layer_bias(net.input_bias(image) if bias_mode else {}, geo).items()}
    # a bias acts from the step the layer's first input arrives (layer_bias.py): set then, by the host
    bias_sets: dict[int, list[tuple]] = {}
    run_steps = spec.run_steps  # T + depth(readout), less the lead
    # A `with` block, not cleanup() at the end: an interrupted run must not leave spikereg-lava-* behind.
    with tempfile.TemporaryDirectory(prefix="spikereg-lava-", dir=workdir) as tmp:
        work = Path(tmp)
        if spec.input_mode == "spikes":
            source = SpikeSource(frames=np.asarray(image, dtype=np.int32), name="input")
        elif not bias_mode:
            payload = np.asarray(fx.quantize_input(np.asarray(image, dtype=np.float64)), dtype=np.int32)
            source = AnalogSource(payload=payload, time_steps=spec.time_steps, name="input")
        else:
            source = None
        ports = {} if source is None else {spec.input_layer.name: source.s_out}
        sinks = {}
        recorder = readout = None
        for layer in spec.layers[1:]:
            shape = (layer.out_channels, *geo[layer.name].out_shape)
            if layer.kind == "readout":
                readout = ReadoutAccumulator(shape=shape, window_start=depth[layer.name] + 1 - lead,
                                             window_len=spec.time_steps, out_path=str(work / "readout.npy"))
                sinks[layer.name] = readout.a_in
            else:
                assert layer.neuron is not None
                start = bias_start_step(spec, layer.name) if layer.name in bias else 0
                if layer.name in bias and start == 0:
                    neurons = layer.neuron.lava_process(shape, tag, layer.name, bias_mant=bias[layer.name])
                else:
                    neurons = layer.neuron.lava_process(shape, tag, layer.name)
                if start > 0:
                    value = layer.neuron.lava_bias_units(bias[layer.name], shape, tag)
                    bias_sets.setdefault(start, []).append((getattr(neurons, layer.neuron.lava_bias_var), value))
                sinks[layer.name] = neurons.a_in
                ports[layer.name] = neurons.s_out
                if layer is spec.readout:  # a network that ends in spikes: record them (and count them)
                    recorder = SpikeRecorder(shape=shape, num_steps=run_steps, out_path=str(work / "output.npy"),
                                             graded=layer.neuron.payload_bits > 1, name=f"{layer.name}->output")
                    neurons.s_out.connect(recorder.a_in)
        synapses = {}
        recorder_of: dict[str, tuple[str, str]] = {}
        for edge in net.edges:
            dst = spec.layer(edge.dst)
            analog = edge.payload == "analog"
            if analog and bias_mode:
                continue
            w = net.edge_weights[(edge.src, edge.dst)]
            bound = max_abs_row_sum(w, dst)
            record = record_spikes and not analog and edge.src not in recorder_of and edge.src != spec.input_layer.name
            if record:
                recorder_of[edge.src] = (edge.src, edge.dst)
            syn = Conv3dSynapse(
                in_shape=(spec.channels_of(edge.src), *geo[edge.src].out_shape),
                out_shape=(dst.out_channels, *geo[dst.name].out_shape), weight=w, kind=dst.kind, stride=dst.stride,
                padding=dst.padding, output_padding=dst.output_padding, delay=edge.delay, analog=analog,
                analog_shift=analog_shift(dst),
                fanout=edge_fanout(spec, geo, edge), num_steps=run_steps,
                exact_float64=bound * ((1 << edge.payload_bits) - 1) >= FLOAT32_EXACT,
                record_path=str(work / f"spikes_{edge.src}.npy") if record else "", graded=edge.payload == "graded",
                name=f"{edge.src}->{edge.dst}",
            )
            ports[edge.src].connect(syn.s_in)
            syn.a_out.connect(sinks[edge.dst])
            synapses[(edge.src, edge.dst)] = syn
        # any process of the connected graph starts and stops the whole runtime
        wall, per_edge = _run_and_stop(source or readout or recorder, synapses, run_steps, tag, progress, bias_sets)
        for (src, dst), counters in per_edge.items():
            check_payloads(spec.layer(src), counters[3])
            if counters[4] >= 1 << 31:  # the int32 port wrapped it; the engine's int64 sum did not
                raise SpikeRegError(f"the synaptic input of layer {dst!r} reached {counters[4]}, beyond the "
                                    "int32 ports of the Lava processes")
        readout_sum = np.load(work / "readout.npy") if spec.has_readout else None
        if readout_sum is not None and spec.readout.name in bias:  # the host adds the readout's bias, T times
            added = bias[spec.readout.name] * spec.time_steps
            readout_sum = readout_sum + (added if tag == "fixed_pt" else added / fx.WEIGHT_SCALE)
        output_spikes, emitted = None, {}
        if recorder is not None:
            out = spec.readout
            shape = (out.out_channels, *geo[out.name].out_shape)
            steps_all = _recorded_steps(work / "output.npy", shape, out.neuron.payload_bits > 1)
            aligned = steps_all[depth[out.name] - lead: depth[out.name] - lead + spec.time_steps]
            output_spikes = np.moveaxis(aligned.reshape(len(aligned), *shape), 0, -1)
            check_payloads(out, int(np.abs(steps_all).max(initial=0)))
            emitted[out.name] = np.stack([(aligned != 0).sum(axis=1), np.abs(aligned).sum(axis=1)]).astype(np.int64)
        counts = _gather_counts(spec, geo, {name: d - lead for name, d in depth.items()}, per_edge, emitted)
        spikes = None
        if record_spikes:
            spikes = {}
            for src, _key in recorder_of.items():
                shape = (spec.channels_of(src), *geo[src].out_shape)
                steps_all = _recorded_steps(work / f"spikes_{src}.npy", shape, spec.layer(src).neuron.payload_bits > 1)
                aligned = steps_all[depth[src] - lead: depth[src] - lead + spec.time_steps]
                spikes[src] = [s.reshape(shape) for s in aligned]
    scale = spec.readout_scale / spec.time_steps
    displacement = None if readout_sum is None else \
        readout_sum.astype(np.float64) * (scale if tag == "fixed_pt" else scale * fx.WEIGHT_SCALE)
    return LavaRun(displacement, readout_sum, counts, spec.time_steps, run_steps, tag, wall, spikes, output_spikes)


def _run_and_stop(source, synapses: dict, run_steps: int, tag: str, progress: bool,
                  bias_sets: dict[int, list[tuple]] | None = None,
                  ) -> tuple[float, dict[tuple[str, str], tuple[np.ndarray, ...]]]:
    """Run the graph, read the per-step counters, stop the runtime; on Ctrl-C / SIGTERM stop it cleanly, then raise.

    Lava forks one worker per process model and talks to them through blocking channels. A signal raised inside
    one of those calls leaves the runtime mid-protocol and its `stop()` then waits forever (issue 19), so signals
    are deferred while the runtime lives (`deferred_signals`): the current `run()` call ends (one step with the
    progress bar, the whole run without it), `stop()` runs on an idle runtime and ends every worker, and only then
    is the signal raised. Should stopping hang (a worker killed from outside) or a second signal come, the
    deferral escalates and the workers are killed by PID.

    `bias_sets` maps a step to the (Var, value) pairs the host writes before it (layer biases that start when the
    layer's first input arrives): the run pauses there, as a Loihi host would between two runs.
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    cfg = Loihi2SimCfg(select_tag=tag)
    per_edge: dict[tuple[str, str], tuple[np.ndarray, ...]] = {}
    stop_called = False
    with deferred_signals() as deferral:
        try:
            started = time.perf_counter()
            if progress:
                # One run call per step so the bar moves per time step (costs ~0.3 s per call in Lava's runtime);
                # it is also the point where a deferred signal is seen.
                from tqdm import tqdm

                with tqdm(total=run_steps, desc=f"Lava {tag}", unit="step") as bar:
                    for step in range(run_steps):
                        _write_vars(bias_sets, step)
                        source.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
                        bar.update(1)
                        if deferral.signum is not None:
                            break
            else:
                done = 0
                for boundary in [*sorted(k for k in (bias_sets or {}) if 0 < k < run_steps), run_steps]:
                    _write_vars(bias_sets, done)
                    source.run(condition=RunSteps(num_steps=boundary - done), run_cfg=cfg)
                    done = boundary
                    if deferral.signum is not None:
                        break
            wall = time.perf_counter() - started
            if deferral.signum is None:
                per_edge = {key: (np.asarray(s.spike_counts.get(), dtype=np.int64),
                                  np.asarray(s.synop_counts.get(), dtype=np.int64),
                                  np.asarray(s.payload_counts.get(), dtype=np.int64),
                                  int(s.payload_peak.get()[0]), int(s.current_peak.get()[0]))
                            for key, s in synapses.items()}
            stop_called = True
            source.stop()
        except BaseException:
            if deferral.escalated:
                _abandon_runtime(source)
            elif not stop_called:  # a Lava error: stop the workers as before (never twice: a failed stop hangs)
                source.stop()
            raise
    deferral.raise_pending()
    return wall, per_edge


def _write_vars(sets: dict[int, list[tuple]] | None, step: int) -> None:
    """Write the Vars due before `step` (step 0's values are the processes' initial values: nothing to write)."""
    if step > 0:
        for var, value in (sets or {}).get(step, ()):
            var.set(value)


def _abandon_runtime(source) -> None:
    """The last resort after an escalated signal: kill Lava's workers (and theirs) by PID and mark the runtime
    stopped, because its `__del__` would otherwise call `stop()` at exit and wait for the dead workers forever."""
    import multiprocessing

    runtime = source.runtime
    # The shared-memory manager's server (a worker) keeps its socket in a pymp-* folder of its own that its exit
    # finaliser would remove; killed, it cannot, so the folder is removed here.
    infrastructure = getattr(runtime, "_messaging_infrastructure", None)
    manager = getattr(getattr(infrastructure, "smm", None), "_manager", None)
    address = getattr(manager, "address", None)
    workers: set[int] = set()
    for child in multiprocessing.active_children():
        workers |= {child.pid, *descendant_pids(child.pid)} if child.pid else set()
    kill_pids(workers)
    if isinstance(address, str) and Path(address).parent.name.startswith("pymp-"):
        shutil.rmtree(Path(address).parent, ignore_errors=True)
    if runtime is not None:
        runtime._is_started = False
        runtime._is_running = False


def _gather_counts(spec: NetworkSpec, geo, depth, per_edge,
                   emitted: dict[str, np.ndarray]) -> dict[str, LayerCounts]:
    """Sum per-step counters over each source's model window: Lava steps depth(src)+1 .. depth(src)+T (`depth`
    as the run lays it out). `emitted` holds (events, payload sums) per step of layers no synapse reads (the
    output's)."""
    t_steps = spec.time_steps
    counts = {layer.name: LayerCounts(layer.name, geo[layer.name].neurons) for layer in spec.layers[1:]}
    for edge in spec.edges():
        src, dst = edge.src, edge.dst
        if edge.payload == "analog":  # T x the real taps, or once per inference with input_mode "bias"
            counts[dst].input_macs += analog_input_macs(spec, geo, edge)
            continue
        spk, ops, payloads, _peak, _current = per_edge[(src, dst)]
        window = slice(depth[src], depth[src] + t_steps)
        c = counts[dst]
        c.input_spikes += int(spk[window].sum())
        step_ops = ops[window].tolist()
        if edge.payload == "graded":  # weight x payload multiply-accumulates, apart from the binary SynOps
            c.graded_synops += int(ops[window].sum())
            c.graded_synops_per_step = _added(c.graded_synops_per_step, step_ops)
        else:
            c.synops += int(ops[window].sum())
            c.synops_per_step = _added(c.synops_per_step, step_ops)
        emitted.setdefault(src, np.stack([spk[window], payloads[window]]))
    for layer in spec.layers[1:]:
        c = counts[layer.name]
        c.neuron_updates = neuron_updates(c.neurons, t_steps)
        if layer.kind == "input":
            continue
        c.synops_per_step = c.synops_per_step or [0] * t_steps
        c.graded_synops_per_step = c.graded_synops_per_step or [0] * t_steps
        if layer.spiking:
            c.spikes_per_step = emitted[layer.name][0].tolist()
            c.spikes = int(emitted[layer.name][0].sum())
            c.payload_sum = int(emitted[layer.name][1].sum())
    return counts


def check_payloads(layer: LayerSpec, peak: int) -> None:
    """Refuse a run whose layer sent a payload wider than its message (lava-nc's graded processes do not clip, the
    reference engine and the training module refuse it in the step: the engines must not differ silently)."""
    neuron = layer.neuron
    if neuron is None or neuron.payload_bits == 1:
        return
    limit = neuron.payload_limit
    if peak > limit:
        raise SpikeRegError(f"layer {layer.name!r} sent a payload of {peak}, beyond its {neuron.payload_bits}-bit "
                            f"message (at most {limit})")


def message_bits(edge: Edge, accepted: int) -> int:
    """The `num_message_bits` a synapse on `edge` needs (lava-nc's convention: 0 = binary spikes), refused with one
    line when the synapse takes narrower messages than the source sends (a graded layer feeding a binary-only
    synapse would silently lose its payloads)."""
    bits = {"analog": 24, "binary": 0}.get(edge.payload, edge.payload_bits)
    if bits > accepted:
        kind = "binary spikes only" if accepted == 0 else f"messages of at most {accepted} bits"
        raise SpikeRegError(f"layer {edge.src!r} sends {bits}-bit {edge.payload} payloads, but its synapse into "
                            f"{edge.dst!r} takes {kind}")
    return bits


def _added(series: list[int], step_values: list[int]) -> list[int]:
    """Per-step counts of one more edge into a layer, added to those of its other edges."""
    return [a + b for a, b in zip(series, step_values, strict=True)] if series else step_values


def _recorded_steps(path: Path, shape: tuple[int, ...], graded: bool) -> np.ndarray:
    """A recording (`models._recorded` per step) as (steps, values): bool spikes, or int64 graded payloads."""
    stored = np.load(path)
    if graded:
        return stored.astype(np.int64)
    return np.unpackbits(stored, axis=1, count=int(np.prod(shape))).astype(bool)
