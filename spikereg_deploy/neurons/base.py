"""What every neuron model provides, so that the writer, reader, engines, Lava builder and trainer need no model names.

A model is a frozen dataclass of its parameters in Loihi's integer units (what the hardware is configured with) whose
methods give everything a stage needs: its NetX fields (write and read), its state and integer step (numpy or torch
int64, the one definition of its arithmetic), its SLAYER training module and its Lava process (both imported lazily:
the core must not import lava at module import), and what one of its events costs downstream. Adding a model means
one module deriving from `NeuronModel` plus one line in `registry.py`.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar

from ..errors import NetFormatError, SpikeRegError
from ..quantization import THRESHOLD_MANT_MAX, THRESHOLD_MANT_MIN, WEIGHT_SCALE

#: Lava-nc model tags a neuron's process must support: Loihi integers, or the float model of the same dynamics.
LAVA_TAGS: tuple[str, ...] = ("fixed_pt", "floating_pt")

EventCost = Literal["add", "multiply"]
ModelT = TypeVar("ModelT", bound="NeuronModel")


class NeuronParamError(SpikeRegError):
    """An invalid neuron parameter; `param` names the dataclass field so readers can name their own field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class NeuronModel(ABC):
    """Interface of a neuron model; subclasses are frozen dataclasses whose fields are the model's parameters.

    Every model so far has a threshold mantissa `vth_mant` (compared after `<< 6` against the voltage; SDNN's delta
    threshold after `<< 12`), a `ref_delay` and a `graded` flag, the NetX fields `vThMant`, `refDelay`,
    `gradedSpike` (SDNN, lava-dl's, writes neither of the last two: it is always graded, without refractory period).
    """

    #: The NetX `neuron/type` string, the registry's key.
    netx_type: ClassVar[str]
    #: NetX field name -> (dataclass field, value type) in writing order (`type` is written first, not listed).
    netx_fields: ClassVar[dict[str, tuple[str, type]]]
    #: NetX fields a file may omit, with the value a reader then takes (lava-dl's defaults, e.g. SDNN's
    #: `messageBits`, which netx reads but lava-dl's export does not write).
    netx_defaults: ClassVar[dict[str, Any]] = {}
    #: Names of the integer state arrays `init_state` returns and `step` takes, in that order.
    state_names: ClassVar[tuple[str, ...]]
    #: `UNetConfig` fields that `from_float` reads besides the threshold (SLAYER's hyper-parameters, flags).
    hyperparameters: ClassVar[tuple[str, ...]] = ()
    #: Bits one output event carries: 1 = binary spike.
    payload_bits: ClassVar[int] = 1
    #: What one event costs at each synapse it reaches: a binary SynOp is an add; a graded event is a multiply.
    event_cost: ClassVar[EventCost] = "add"
    #: Whether the model has Loihi's per-neuron bias (`step_biased`, `lava_process(bias_mant=...)`): needed by
    #: input_mode "bias", where the first layer's static current is that bias.
    supports_bias: ClassVar[bool] = False
    #: Payload per unit of activation (the training loss's sparsity term divides |payload| by it): 1 for spikes
    #: and multi-threshold levels, 2^12 for sigma-delta.
    payload_unit: ClassVar[int] = 1
    #: Left shift of the analog input current (`fixed_point.analog_current`) into this model's a_in units: 0 for
    #: the models whose a_in is in weight mantissas x spikes; the sigma-delta model's is finer (`sigma_delta.py`).
    analog_input_shift: ClassVar[int] = 0
    #: Whether a spike subtracts the threshold (keeping the residue) instead of zeroing the voltage: conversion
    #: then maps a QCFS teacher's clips to thresholds as they are, without calibrating them.
    subtractive_reset: ClassVar[bool] = False

    vth_mant: int
    ref_delay: int
    graded: bool

    # -- construction and validation -------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def from_float(cls: type[ModelT], threshold: float, **hyper: float) -> ModelT:
        """Quantize SLAYER's float parameters (threshold, plus `hyperparameters`) as lava-dl exports them."""

    def _check_int(self, name: str, lo: int | None = None, hi: int | None = None) -> None:
        """Field `name` must be an integer (in [lo, hi] when given); stored as a plain int, so that parameters
        read from numpy or HDF5 compare and hash like the ones a config builds."""
        value = getattr(self, name)
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            raise NeuronParamError(name, f"neuron {name} must be an integer, got {value!r}")
        object.__setattr__(self, name, int(value))
        if lo is not None and hi is not None and not lo <= int(value) <= hi:
            raise NeuronParamError(name, f"neuron {name} must be in [{lo}, {hi}], got {value}")

    def _check_spike_fields(self) -> None:
        """Threshold, refractory delay and graded flag (true exactly when a model's payload is wider than 1 bit)."""
        self._check_int("vth_mant", THRESHOLD_MANT_MIN, THRESHOLD_MANT_MAX)
        self._check_int("ref_delay")
        if self.ref_delay != 1:
            raise NeuronParamError("ref_delay", "only refDelay == 1 (no refractory period) is supported, as "
                                                "SLAYER's CUBA exports")
        if not isinstance(self.graded, bool):
            raise NeuronParamError("graded", f"neuron graded must be a boolean, got {self.graded!r}")
        if self.graded and self.payload_bits == 1:
            raise NeuronParamError("graded", f"a {self.netx_type} neuron sends binary spikes (graded-spike payloads "
                                             "need the multi-threshold model, CUBA-MT)")
        if not self.graded and self.payload_bits > 1:
            raise NeuronParamError("graded", f"a {self.netx_type} neuron sends graded spikes: gradedSpike must be "
                                             "true")

    # -- thresholds ------------------------------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        """Threshold in SLAYER's float units (weights are mantissa / 64)."""
        return self.vth_mant / WEIGHT_SCALE

    def with_threshold(self: ModelT, vth_mant: int) -> ModelT:
        """The same model with another threshold mantissa (conversion calibrates thresholds layer by layer)."""
        return dataclasses.replace(self, vth_mant=vth_mant)  # type: ignore[type-var]

    @property
    def payload_limit(self) -> int:
        """The largest payload one event carries: 1 for a spike, 2^payload_bits - 1 unsigned (signed models: less)."""
        return (1 << self.payload_bits) - 1

    # -- NetX ------------------------------------------------------------------------------------------------
    def to_netx_fields(self) -> dict[str, Any]:
        """`neuron/` datasets as plain Python values, `type` first (the writer picks the HDF5 dtypes)."""
        fields: dict[str, Any] = {"type": self.netx_type}
        for netx, (param, kind) in self.netx_fields.items():
            fields[netx] = kind(getattr(self, param))
        return fields

    @classmethod
    def from_netx_fields(cls: type[ModelT], values: Mapping[str, Any], where: str) -> ModelT:
        """Parameters from `neuron/` values (typed as `netx_fields` says); bad ones raise one NetFormatError line
        naming `where` (the group) and the field. The reader adds the file name."""
        values = {**cls.netx_defaults, **values}
        given = {key for key in values if key != "type"}
        missing = [key for key in cls.netx_fields if key not in given]
        if missing:
            raise NetFormatError(f"{where}: missing field '{missing[0]}' for a {cls.netx_type} neuron")
        unknown = sorted(given - set(cls.netx_fields))
        if unknown:
            raise NetFormatError(f"{where}: unsupported {cls.netx_type} neuron field(s) {', '.join(unknown)}")
        if values.get("type", cls.netx_type) != cls.netx_type:
            raise NetFormatError(f"{where}: neuron type {values['type']!r} is not {cls.netx_type!r}")
        by_param = {param: netx for netx, (param, _kind) in cls.netx_fields.items()}
        try:
            return cls(**{param: values[netx] for netx, (param, _kind) in cls.netx_fields.items()})
        except NeuronParamError as err:
            raise NetFormatError(f"{where}: field '{by_param.get(err.param, err.param)}': {err.message}") from None

    # -- integer dynamics ------------------------------------------------------------------------------------
    def init_state(self, shape: tuple[int, ...], xp: Any) -> tuple[Any, ...]:
        """Zeroed int64 state arrays (`state_names`) for `shape` neurons; `xp` is numpy or torch."""
        return tuple(xp.zeros(shape, dtype=xp.int64) for _ in self.state_names)

    @abstractmethod
    def step(self, state: tuple[Any, ...], a_in: Any) -> tuple[tuple[Any, ...], Any]:
        """One time step in Loihi integers: (state, integer synaptic input) -> (new state, bool spikes, or int64
        payloads for a graded model)."""

    def step_biased(self, state: tuple[Any, ...], a_in: Any, bias_mant: Any) -> tuple[tuple[Any, ...], Any]:
        """`step` with a static bias `bias_mant << INPUT_BIAS_EXP` added to the voltage (models with a bias)."""
        raise SpikeRegError(f"neuron type {self.netx_type} has no bias (input_mode 'bias' needs CUBA, IF or CUBA-SR)")

    # -- other engines ---------------------------------------------------------------------------------------
    @abstractmethod
    def training_module(self) -> Any:
        """The SLAYER neuron (a torch module over (N, C, ..., T)) computing `step`'s integers in eval mode."""

    def bias_training_module(self) -> Any:
        """The SLAYER neuron of an input-fed layer with input_mode "bias", computing `step_biased`'s integers in eval
        mode when fed the bias (the static current) at every step (models with a bias)."""
        raise SpikeRegError(f"neuron type {self.netx_type} has no bias (input_mode 'bias' needs CUBA, IF or CUBA-SR)")

    @abstractmethod
    def lava_process(self, shape: tuple[int, ...], tag: str, name: str) -> Any:
        """A lava-nc process with an `a_in` port (integer synaptic input) and an `s_out` port (spikes) for `tag`."""

    #: The Var of the model's Lava process that holds the bias (the host writes it when a layer's bias starts).
    lava_bias_var: ClassVar[str] = "bias"

    def lava_bias_units(self, bias_mant: Any, shape: tuple[int, ...], tag: str) -> Any:
        """Bias mantissas (exponent 6) over `shape` as the model's Lava process holds them in its `lava_bias_var`
        for `tag` (what the host writes with `Var.set` when a layer's bias starts; models with a bias)."""
        raise SpikeRegError(f"neuron type {self.netx_type} has no bias (input_mode 'bias' needs CUBA, IF or CUBA-SR)")


#: NetX neuron type -> the project's own Lava process class for it, filled by the simulators stage when it imports
#: its process library (`simulators/lava_models/`): the core imports no stage, so the stage hands the class in.
_LAVA_PROCESSES: dict[str, type] = {}


def register_lava_process(netx_type: str, process_class: type) -> None:
    """Make `process_class` the Lava process of neuron type `netx_type` (called by the stage that defines it)."""
    _LAVA_PROCESSES[netx_type] = process_class


def registered_lava_process(netx_type: str, layer: str) -> type:
    """The registered Lava process class for `netx_type`, or a one-line error naming the layer."""
    try:
        return _LAVA_PROCESSES[netx_type]
    except KeyError:
        raise SpikeRegError(f"layer {layer!r}: no Lava process is registered for neuron type {netx_type!r} "
                            "(the simulators stage registers its own processes when it loads "
                            "simulators/lava_models/)") from None


def check_lava_tag(tag: str) -> None:
    """Refuse a Lava model tag the neuron models do not provide."""
    if tag not in LAVA_TAGS:
        raise SpikeRegError(f"unknown Lava model tag {tag!r} (choose {' or '.join(LAVA_TAGS)})")
