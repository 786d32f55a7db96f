"""The torch models as `spikereg_deploy.predict.Predictor`s: the ANN teacher and the SNN (SLAYER model, quantized).

Which one a checkpoint holds is its `kind` field, so the dispatch is a table keyed by that field, not a look at the
model's class.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from spikereg_deploy.network import NetworkSpec
from spikereg_deploy.predict import SpikeTally
from spikereg_deploy.torch_device import torch_device

from .ann import AnnUNet
from .checkpoint import load_checkpoint, read_checkpoint
from .default_model import load_default_model
from .event_hooks import counts_from_spikes
from .snn import SpikingUNet

__all__ = ["AnnPredictor", "SnnPredictor", "PREDICTORS", "load_checkpoint_predictor"]


def _image(fixed: np.ndarray, moving: np.ndarray, device: torch.device) -> torch.Tensor:
    """(1, 2, D, H, W) float32 on `device`: the batch of one both torch models take."""
    return torch.as_tensor(np.stack([fixed, moving]), dtype=torch.float32)[None].to(device)


class AnnPredictor:
    """The ANN teacher's float forward."""

    kind = "ann"
    label = "ANN teacher"
    tally: SpikeTally | None = None

    def __init__(self, model: AnnUNet, name: str, device: str = "cpu") -> None:
        self.device = torch_device(device)
        self.model, self.name = model.to(self.device).eval(), name
        self.spec: NetworkSpec = model.spec

    def predict(self, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.model(_image(fixed, moving, self.device))[0].double().cpu().numpy()


class SnnPredictor:
    """The SLAYER model in eval mode: the quantized network that the simulators run spike for spike."""

    kind = "snn"
    label = "SNN, quantized"

    def __init__(self, model: SpikingUNet, name: str, device: str = "cpu") -> None:
        self.device = torch_device(device)
        self.model, self.name = model.to(self.device).eval(), name
        self.spec: NetworkSpec = model.spec
        self.tally = SpikeTally()

    def predict(self, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.model(_image(fixed, moving, self.device))
        geo = self.spec.geometry(fixed.shape)
        self.tally.record(self.spec, fixed.shape,
                          counts_from_spikes(self.spec, geo, {n: s[0].cpu() for n, s in out.spikes.items()}))
        return out.displacement[0].double().cpu().numpy()


PREDICTORS: dict[str, type[AnnPredictor] | type[SnnPredictor]] = {"ann": AnnPredictor, "snn": SnnPredictor}


def load_checkpoint_predictor(path: str | os.PathLike[str] | None, device: str = "cpu") -> AnnPredictor | SnnPredictor:
    """The predictor for a checkpoint's `kind` on `device`; None gives the embedded default model."""
    if path is None:
        model, description = load_default_model()
        return SnnPredictor(model, description, device)
    kind = read_checkpoint(path)["kind"]
    cls = PREDICTORS[kind]
    return cls(load_checkpoint(path, kind=kind), f"{path} ({cls.label})", device)  # type: ignore[arg-type]
