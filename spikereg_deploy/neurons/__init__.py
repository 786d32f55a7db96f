"""Neuron models, one module each, found through one registry keyed by the NetX neuron `type`."""
from __future__ import annotations

from .base import LAVA_TAGS, NeuronModel, NeuronParamError, register_lava_process
from .cuba import CubaNeuron
from .if_neuron import IfNeuron
from .multi_threshold import MultiThresholdNeuron
from .registry import NEURON_TYPES, neuron_model
from .sigma_delta import SigmaDeltaNeuron
from .soft_reset import SoftResetNeuron

__all__ = ["LAVA_TAGS", "NEURON_TYPES", "CubaNeuron", "IfNeuron", "MultiThresholdNeuron", "NeuronModel",
           "NeuronParamError", "SigmaDeltaNeuron", "SoftResetNeuron", "neuron_model", "register_lava_process"]
