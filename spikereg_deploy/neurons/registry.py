"""The one registry of neuron models, keyed by the NetX `neuron/type` string.

Writer, reader, reference engine, Lava builder and trainer find a model here and call its methods, so a new model is
one module plus one entry in `_MODELS`.
"""
from __future__ import annotations

from ..errors import SpikeRegError
from .base import NeuronModel
from .cuba import CubaNeuron
from .if_neuron import IfNeuron
from .multi_threshold import MultiThresholdNeuron
from .sigma_delta import SigmaDeltaNeuron
from .soft_reset import SoftResetNeuron

_MODELS: dict[str, type[NeuronModel]] = {model.netx_type: model for model in (CubaNeuron, IfNeuron, SoftResetNeuron,
                                                                          MultiThresholdNeuron, SigmaDeltaNeuron)}

#: Known NetX neuron types, in registration order.
NEURON_TYPES: tuple[str, ...] = tuple(_MODELS)


def neuron_model(netx_type: str) -> type[NeuronModel]:
    """The model class for a NetX neuron type, or a SpikeRegError listing the known types."""
    try:
        return _MODELS[netx_type]
    except (KeyError, TypeError):
        raise SpikeRegError(f"unknown neuron type {netx_type!r} (known: {', '.join(NEURON_TYPES)})") from None
