"""`checkpoint.pt`: the model config plus its state dict; loading rebuilds the exact model or says why not."""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from spikereg_deploy.atomic import atomic_file
from spikereg_deploy.errors import CheckpointError, SpikeRegError
from spikereg_deploy.unet import UNetConfig

from .ann import AnnUNet
from .snn import SpikingUNet

MODEL_KINDS = {"snn": SpikingUNet, "ann": AnnUNet}

CHECKPOINT_FORMAT = "spikereg-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | os.PathLike[str], model: SpikingUNet | AnnUNet, meta: dict[str, Any] | None = None,
                    training_state: dict[str, Any] | None = None) -> Path:
    """Write atomically: a crash mid-save never leaves a truncated checkpoint under the final name.

    `training_state` (optimizer state, step, RNG states) makes a run resumable; exported models do not need it.
    """
    kind = "ann" if isinstance(model, AnnUNet) else "snn"
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "kind": kind,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
        "training_state": training_state or {},
    }
    with atomic_file(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check the envelope (format, version, config) without building a model."""
    p = Path(path)
    if p.is_dir():
        raise CheckpointError("is a folder, not a checkpoint file", p)
    if not p.is_file():
        raise CheckpointError("no such checkpoint file", p)
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError,
            IndexError, TypeError, AttributeError) as err:  # torch's unpickler raises all of these on junk
        raise CheckpointError(f"not a readable torch checkpoint ({type(err).__name__})", p) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError("not a spikereg checkpoint (missing format tag)", p)
    version = payload.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint version {version!r} is newer than this tool reads ({CHECKPOINT_VERSION})",
                              p)
    if not isinstance(payload.get("config"), dict) or not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError("checkpoint lacks a config or a state dict", p)
    if payload.get("kind") not in MODEL_KINDS:
        raise CheckpointError(f"unknown model kind {payload.get('kind')!r}", p)
    return payload


def load_checkpoint(path: str | os.PathLike[str], kind: str | None = "snn") -> SpikingUNet | AnnUNet:
    """Rebuild the model from its stored config and load the weights strictly (`kind` None accepts either)."""
    payload = read_checkpoint(path)
    if kind is not None and payload["kind"] != kind:
        raise CheckpointError(f"checkpoint holds an {payload['kind']} model, expected {kind}", path)
    try:
        config = UNetConfig.from_dict(payload["config"])
    except (SpikeRegError, TypeError, ValueError) as err:
        raise CheckpointError(f"invalid model config: {err}", path) from None
    model = MODEL_KINDS[payload["kind"]](config)
    state = payload["state_dict"]
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state)
                   if not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                  else f"shape mismatch in {wrong[:3]}")
        raise CheckpointError(f"checkpoint does not match its architecture ({detail})", path)
    for key, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"non-finite values in {key}", path)
    model.load_state_dict(state, strict=True)
    return model.eval()
