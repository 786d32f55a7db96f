"""The soft-reset CUBA neurons (`CUBA-SR`, and `CUBA-MT`, its multi-threshold graded form) as one Lava process
with fixed_pt and floating_pt CPU models.

lava-nc 0.10 has no reset-by-subtraction neuron (docs/hardware-facts.md, "Soft-reset neurons"), so this is the
project's own, with lava-nc LIF's ports (`a_in` int32 of precision 24, `s_out`) and state Vars (`u`, `v`), so the
builder wires it like any LIF. The fixed_pt model runs `SoftResetNeuron.step` from the neuron registry (the one
definition of the integers); floating_pt runs the same dynamics in float (weight units: a_in / 64, states / 2^12),
without the 24-bit wrap and saturation, as lava-nc's float LIF. A CUBA-MT process sends its payload k (the levels
crossed) on `s_out`, which the synapse models multiply by their weights (lava-nc's `num_message_bits > 0`). Lava
executes every file of this folder while it looks for process models, so this file holds only the process, its
models and their registration.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from spikereg_deploy.neurons import MultiThresholdNeuron, SoftResetNeuron, neuron_model, register_lava_process
from spikereg_deploy.quantization import DECAY_UNITY, WEIGHT_SCALE


class SoftResetLIF(AbstractProcess):
    """Soft-reset CUBA compartments: `neuron` is the model's NetX fields (`SoftResetNeuron.to_netx_fields()`),
    `v_init` the voltage every run starts from and `bias` the per-neuron bias added to v at every step (input_mode
    "bias"), both in the model tag's units (integers, the bias at exponent 6, for fixed_pt; float else)."""

    def __init__(self, *, shape: tuple[int, ...], neuron: dict[str, Any], v_init: float, bias: Any = 0,
                 **kwargs: Any) -> None:
        _model(neuron)  # refuse bad parameters before Lava compiles
        super().__init__(shape=shape, neuron=dict(neuron), **kwargs)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=np.zeros(shape))
        self.v = Var(shape=shape, init=np.full(shape, v_init))
        self.bias = Var(shape=shape, init=np.broadcast_to(np.asarray(bias), shape).copy())


@implements(proc=SoftResetLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySoftResetLIFFixed(PyLoihiProcessModel):
    """Loihi integers: the registry's step on int64 copies of the 24-bit Vars."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.neuron = _model(proc_params["neuron"])

    def run_spk(self) -> None:
        a_in = self.a_in.recv().astype(np.int64)
        (u, v), spikes = self.neuron.step_biased((self.u.astype(np.int64), self.v.astype(np.int64)), a_in,
                                                 self.bias.astype(np.int64))
        self.u[:] = u
        self.v[:] = v
        self.s_out.send(spikes.astype(np.int32))


@implements(proc=SoftResetLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySoftResetLIFFloat(PyLoihiProcessModel):
    """The same dynamics in float: u = u (1 - iDecay/4096) + a_in, v = v (1 - vDecay/4096) + u + bias, v -= theta
    at a spike (v > theta, theta = vThMant / 64)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        neuron = _model(proc_params["neuron"])
        self.keep_u = 1.0 - neuron.i_decay / DECAY_UNITY
        self.keep_v = 1.0 - neuron.v_decay / DECAY_UNITY
        self.theta = neuron.vth_mant / WEIGHT_SCALE
        self.levels = getattr(neuron, "max_payload", 1)

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        self.u[:] = self.u * self.keep_u + a_in
        self.v[:] = self.v * self.keep_v + self.u + self.bias
        payload = np.clip(np.ceil(self.v / self.theta) - 1, 0, self.levels)  # levels strictly crossed
        self.v[:] -= payload * self.theta
        self.s_out.send(payload.astype(float))


def _model(fields: dict[str, Any]) -> SoftResetNeuron:
    """The registry's model of these NetX fields (CUBA-SR or CUBA-MT), its parameters checked."""
    model = neuron_model(fields.get("type", SoftResetNeuron.netx_type))
    return model.from_netx_fields(fields, "SoftResetLIF")  # type: ignore[return-value]


# Lava also executes this file as a top-level module `soft_reset` while it scans the folder; only the package's own
# class (the one the builder's import defines) is the neuron model's process.
if __name__.startswith("spikereg_deploy."):
    register_lava_process(SoftResetNeuron.netx_type, SoftResetLIF)
    register_lava_process(MultiThresholdNeuron.netx_type, SoftResetLIF)
