"""CPU process models (fixed_pt: Loihi integers; floating_pt: the same graph in float) for `processes.py`.

The integer arithmetic comes from `spikereg_deploy.fixed_point` and the synaptic sum from the reference engine, so
Lava, the engine and the quantized torch model share one definition. torch does the convolution (about 4x faster
than scipy in a process model: docs/hardware-facts.md, "Lava runtime"); the parent must call
`torch.set_num_threads(1)` before Lava forks.
"""
from __future__ import annotations

import os
from collections import deque
from types import SimpleNamespace

import numpy as np
import torch
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from spikereg_deploy import fixed_point as fx
from spikereg_deploy.counting import step_synops
from spikereg_deploy.engine import synaptic_sum

# Absolute import: Lava loads this file by path as a top-level module, where relative imports fail.
from spikereg_deploy.simulators.lava_models.processes import (
    AnalogSource,
    Conv3dSynapse,
    ReadoutAccumulator,
    SpikeRecorder,
    SpikeSource,
)


def _recorded(values: np.ndarray, graded: bool) -> np.ndarray:
    """One step's outputs as stored: spikes bit-packed, graded payloads (signed for sigma-delta, up to 24 bits) as
    int32."""
    if graded:
        return np.rint(values).astype(np.int32).ravel()
    return np.packbits(values != 0)


def _save_npy(path: str, array: np.ndarray) -> None:
    tmp = f"{path}.tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, path)


@implements(proc=AnalogSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyAnalogSourceFixed(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def run_spk(self) -> None:
        payload = self.proc_params["payload"]
        on = self.time_step <= self.proc_params["time_steps"]
        self.s_out.send(payload if on else np.zeros_like(payload))


@implements(proc=AnalogSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyAnalogSourceFloat(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self) -> None:
        payload = self.proc_params["payload"].astype(np.float64) / (fx.INPUT_MAX + 1)
        on = self.time_step <= self.proc_params["time_steps"]
        self.s_out.send(payload if on else np.zeros_like(payload))


class _AbstractConv3dModel(PyLoihiProcessModel):
    """Send what was computed `delay + 1` steps ago, then take this step's input (Lava's Dense timing)."""

    spike_counts: np.ndarray = LavaPyType(np.ndarray, np.int64)
    synop_counts: np.ndarray = LavaPyType(np.ndarray, np.int64)
    payload_counts: np.ndarray = LavaPyType(np.ndarray, np.int64)
    payload_peak: np.ndarray = LavaPyType(np.ndarray, np.int64)
    current_peak: np.ndarray = LavaPyType(np.ndarray, np.int64)
    integer = True

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        p = proc_params
        self.layer = SimpleNamespace(kind=p["kind"], stride=p["stride"], padding=p["padding"],
                                     output_padding=p["output_padding"])
        dtype = torch.float64 if (p["exact_float64"] or not self.integer) else torch.float32
        weight = np.asarray(p["weight"], dtype=np.float64)
        if not self.integer:
            weight = weight / fx.WEIGHT_SCALE
        self.weight = torch.as_tensor(weight).to(dtype)
        self.dtype = dtype
        self.fanout = torch.as_tensor(p["fanout"])
        self.analog = bool(p["analog"])
        self.pending: deque[np.ndarray] | None = None
        self.record_path = p["record_path"]
        self.recorded: list[np.ndarray] = []

    def _synapse_output(self, s_in: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(s_in)
        if self.integer:
            total = synaptic_sum(self.layer, x, self.weight, self.dtype)
            if self.analog:
                total = fx.analog_current(total, self.proc_params["analog_shift"])
            if total.numel():
                self.current_peak[0] = max(int(self.current_peak[0]), int(total.abs().max()))
            return total.numpy().astype(np.int32)
        xin = x.to(self.dtype)[None]
        if self.layer.kind == "convT":
            out = torch.nn.functional.conv_transpose3d(xin, self.weight, stride=self.layer.stride,
                                                       padding=self.layer.padding,
                                                       output_padding=self.layer.output_padding)
        else:
            out = torch.nn.functional.conv3d(xin, self.weight, stride=self.layer.stride, padding=self.layer.padding)
        if self.analog:
            out = out * (1 << self.proc_params["analog_shift"])
        return out[0].numpy()

    def run_spk(self) -> None:
        if self.pending is None:
            zeros = np.zeros(self.a_out.shape, dtype=np.int32 if self.integer else np.float64)
            self.pending = deque([zeros] * (int(self.proc_params["delay"]) + 1))
        self.a_out.send(self.pending.popleft())
        s_in = self.s_in.recv()
        t = self.time_step - 1
        if not self.analog and s_in.size:
            self.payload_peak[0] = max(int(self.payload_peak[0]), int(np.abs(s_in).max()))
        if not self.analog and t < self.spike_counts.shape[0]:
            spikes = s_in != 0  # events: spikes, or graded spikes with a nonzero payload
            self.spike_counts[t] = int(spikes.sum())
            self.payload_counts[t] = int(np.abs(np.rint(s_in).astype(np.int64)).sum())  # |payload|: SDNN's are signed
            per_position = spikes.sum(axis=0)
            self.synop_counts[t] = step_synops(torch.as_tensor(per_position), self.fanout)
            if self.record_path:
                self.recorded.append(_recorded(s_in, self.proc_params["graded"]))
                if t + 1 == self.spike_counts.shape[0]:
                    _save_npy(self.record_path, np.stack(self.recorded))
        self.pending.append(self._synapse_output(s_in))


@implements(proc=Conv3dSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyConv3dSynapseFixed(_AbstractConv3dModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    integer = True


@implements(proc=Conv3dSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyConv3dSynapseFloat(_AbstractConv3dModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    integer = False


class _AbstractReadoutModel(PyLoihiProcessModel):
    steps_seen: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.total: np.ndarray | None = None

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        start, length = self.proc_params["window_start"], self.proc_params["window_len"]
        if start <= self.time_step < start + length:
            self.total = a_in.astype(self._acc_dtype) if self.total is None else self.total + a_in
            self.steps_seen[0] += 1
            if self.time_step == start + length - 1:
                _save_npy(self.proc_params["out_path"], self.total)


@implements(proc=ReadoutAccumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutFixed(_AbstractReadoutModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    _acc_dtype = np.int64


@implements(proc=ReadoutAccumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutFloat(_AbstractReadoutModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    _acc_dtype = np.float64


class _AbstractSpikeSourceModel(PyLoihiProcessModel):
    def run_spk(self) -> None:
        frames = self.proc_params["frames"]
        t = self.time_step - 1
        frame = frames[..., t] if t < frames.shape[-1] else np.zeros(frames.shape[:-1], dtype=frames.dtype)
        self.s_out.send(frame.astype(self._dtype))


@implements(proc=SpikeSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeSourceFixed(_AbstractSpikeSourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    _dtype = np.int32


@implements(proc=SpikeSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeSourceFloat(_AbstractSpikeSourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    _dtype = np.float64


class _AbstractSpikeRecorderModel(PyLoihiProcessModel):
    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.recorded: list[np.ndarray] = []

    def run_spk(self) -> None:
        self.recorded.append(_recorded(self.a_in.recv(), self.proc_params["graded"]))
        if len(self.recorded) == self.proc_params["num_steps"]:
            _save_npy(self.proc_params["out_path"], np.stack(self.recorded))


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderFixed(_AbstractSpikeRecorderModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeRecorderFloat(_AbstractSpikeRecorderModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
