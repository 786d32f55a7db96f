"""Lava processes for what lava-nc lacks: a 3-D (transposed) conv synapse, the analog and spike-train inputs, the
readout, and the recorder of a network's output spikes (plain NetX networks end in spikes, not a readout).

Lava imports every module in this folder to discover process models, so this folder holds only processes and their
models (docs/hardware-facts.md, "Lava runtime"). CUBA and IF neurons are lava-nc's own `LIF`: its bit-accurate
model is Loihi's integer arithmetic; the soft-reset neuron, which lava-nc lacks, is in `soft_reset.py`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class AnalogSource(AbstractProcess):
    """Sends the 8-bit input payloads (C, D, H, W) for the first `time_steps` steps, zeros after.

    On Loihi 2 this is a graded-spike input; its first synapse shifts the weighted sum right by 8 bits.
    """

    def __init__(self, *, payload: np.ndarray, time_steps: int, **kwargs: Any) -> None:
        super().__init__(payload=payload, time_steps=time_steps, **kwargs)
        self.s_out = OutPort(shape=payload.shape)


class Conv3dSynapse(AbstractProcess):
    """A 3-D conv or transposed-conv synapse with an axonal delay, counting the events it handles per step.

    `spike_counts[t-1]` / `synop_counts[t-1]` / `payload_counts[t-1]`: events received at step t (spikes, or graded
    spikes with a nonzero payload), the synapses they reach (exact fan-out, border- and stride-aware) and the sum of
    their |payloads|; `payload_peak` the largest |payload| of the whole run (checked against the source's message
    width after the run: lava-nc's graded processes do not clip), `current_peak` the largest |output| before the
    int32 port (which would wrap it). An analog edge's current is shifted left by
    `analog_shift`, the receiving neuron model's `analog_input_shift`. Recorded inputs are bit-packed spikes, or the
    payloads themselves (int32) when `graded`. For the analog input edge no spikes exist; the counters stay 0 and the
    layer's cost is MACs (accounted by the builder).
    """

    def __init__(self, *, in_shape: tuple[int, ...], out_shape: tuple[int, ...], weight: np.ndarray, kind: str,
                 stride: tuple[int, int, int], padding: tuple[int, int, int], output_padding: tuple[int, int, int],
                 delay: int, analog: bool, fanout: np.ndarray, num_steps: int, exact_float64: bool,
                 record_path: str = "", graded: bool = False, analog_shift: int = 0, **kwargs: Any) -> None:
        super().__init__(weight=weight, kind=kind, stride=stride, padding=padding, output_padding=output_padding,
                         delay=delay, analog=analog, analog_shift=analog_shift, fanout=fanout,
                         exact_float64=exact_float64,
                         record_path=record_path, num_steps=num_steps, graded=graded, **kwargs)
        self.s_in = InPort(shape=in_shape)
        self.a_out = OutPort(shape=out_shape)
        self.spike_counts = Var(shape=(num_steps,), init=0)
        self.synop_counts = Var(shape=(num_steps,), init=0)
        self.payload_counts = Var(shape=(num_steps,), init=0)
        self.payload_peak = Var(shape=(1,), init=0)  # largest |payload| received in any step
        self.current_peak = Var(shape=(1,), init=0)  # largest |synaptic sum| sent (before its int32 port)


class ReadoutAccumulator(AbstractProcess):
    """The non-spiking readout: sums its integer input over the model's T steps and writes the sum to a file.

    The sum goes to `out_path` (an .npy written at the window's last step), never through `Var.get()`, which moves
    only about 50k values/s.
    """

    def __init__(self, *, shape: tuple[int, ...], window_start: int, window_len: int, out_path: str,
                 **kwargs: Any) -> None:
        super().__init__(shape=shape, window_start=window_start, window_len=window_len, out_path=out_path, **kwargs)
        self.a_in = InPort(shape=shape)
        self.steps_seen = Var(shape=(1,), init=0)


class SpikeSource(AbstractProcess):
    """Sends frame t of a (C, D, H, W, T) spike train at step t (1 ... T), zeros after: a plain NetX input."""

    def __init__(self, *, frames: np.ndarray, **kwargs: Any) -> None:
        super().__init__(frames=frames, **kwargs)
        self.s_out = OutPort(shape=frames.shape[:-1])


class SpikeRecorder(AbstractProcess):
    """Records the spikes it receives at every step and writes them, bit-packed per step (graded: the int32
    payloads), to `out_path` (an .npy of shape (num_steps, values)) at the last step; `Var.get()` would be far
    slower for large layers."""

    def __init__(self, *, shape: tuple[int, ...], num_steps: int, out_path: str, graded: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(shape=shape, num_steps=num_steps, out_path=out_path, graded=graded, **kwargs)
        self.a_in = InPort(shape=shape)
