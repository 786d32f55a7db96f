"""The embedded default model: the committed trained checkpoint when present, else seeded weights (and say so)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from .checkpoint import load_checkpoint
from .snn import SpikingUNet, seeded_model

DEFAULT_SEED = 0


def embedded_checkpoint_path() -> Path | None:
    path = Path(str(resources.files("spikereg_deploy") / "data" / "default_model.pt"))
    return path if path.is_file() else None


def load_default_model() -> tuple[SpikingUNet, str]:
    """Return the model and a one-line description of where it came from."""
    path = embedded_checkpoint_path()
    if path is not None:
        return load_checkpoint(path), f"embedded trained model ({path.name})"
    return seeded_model(seed=DEFAULT_SEED).eval(), (
        f"default architecture with seeded random weights (seed {DEFAULT_SEED}); no trained model is embedded yet"
    )
