"""One way to ask any model for a displacement: the ANN teacher, the SNN (SLAYER model) and the integer engine.

Evaluation and benchmarks take a `Predictor` and never ask what kind of model is behind it. The integer engine's
predictor lives here, in the core; the torch models' (`spikereg_deploy.training.predict`) in the training stage.
`spikereg_deploy.cli.common.load_predictor` picks one for a file (the core imports no stage, not even lazily).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from .counting import LayerCounts
from .engine import IntegerNetwork
from .network import NetworkSpec

__all__ = ["Predictor", "SpikeTally", "IntegerEnginePredictor"]


@dataclass
class SpikeTally:
    """Spikes and neuron-steps per spiking layer, summed over every prediction so far (measured), and each
    prediction's full counts (`record`), from which evaluation prices the energy of the accuracy it reports."""

    spikes: dict[str, int] = field(default_factory=dict)
    neuron_steps: dict[str, int] = field(default_factory=dict)
    inferences: list[tuple[tuple[int, ...], dict[str, LayerCounts]]] = field(default_factory=list)

    def record(self, spec: NetworkSpec, input_shape: tuple[int, ...], counts: dict[str, LayerCounts]) -> None:
        """One prediction's counts (every layer, by the counting rules) on a volume of `input_shape`."""
        self.inferences.append((tuple(input_shape), counts))
        for name, c in counts.items():
            if spec.layer(name).spiking:
                self.add(name, c.spikes, c.neurons * spec.time_steps)

    def add(self, layer: str, spikes: int, neuron_steps: int) -> None:
        self.spikes[layer] = self.spikes.get(layer, 0) + int(spikes)
        self.neuron_steps[layer] = self.neuron_steps.get(layer, 0) + int(neuron_steps)

    def clear(self) -> None:
        self.spikes.clear()
        self.neuron_steps.clear()
        self.inferences.clear()

    def rate(self) -> float | None:
        """Spikes per neuron per step over all spiking layers (None before any prediction)."""
        steps = sum(self.neuron_steps.values())
        return sum(self.spikes.values()) / steps if steps else None

    def rates(self) -> dict[str, float]:
        return {name: self.spikes[name] / n for name, n in self.neuron_steps.items() if n}


@runtime_checkable
class Predictor(Protocol):
    """A model that registers one pair: `predict(fixed, moving)` -> displacement (3, D, H, W) in voxels, float64.

    `fixed` and `moving` are (D, H, W) intensities in [0, 1] on the network grid (image channels 0 and 1).
    """

    name: str  # one line: where the model came from and how it runs
    kind: str  # "ann" (teacher), "snn" (SLAYER model, quantized) or "integer" (reference engine on a .net)
    spec: NetworkSpec
    tally: SpikeTally | None  # spikes seen so far; None for a model without spikes

    def predict(self, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray: ...


class IntegerEnginePredictor:
    """The integer reference engine on a network description and its weight mantissas (e.g. a loaded `.net`)."""

    kind = "integer"

    def __init__(self, spec: NetworkSpec, weights: dict[str, np.ndarray], name: str) -> None:
        self.spec, self.name = spec, name
        self.network = IntegerNetwork(spec, weights)
        self.tally = SpikeTally()

    def predict(self, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
        run = self.network.run(np.stack([fixed, moving]))
        self.tally.record(self.spec, fixed.shape, run.counts)
        return run.displacement

