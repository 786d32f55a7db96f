"""Shared fixtures: small seeded networks and volumes (16^3 and below keep the suite fast on 2 cores)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # a started torch thread pool hangs Lava's forked models (docs/hardware-facts.md)


@pytest.fixture
def small_config():
    from spikereg_deploy.unet import UNetConfig

    return UNetConfig(encoder=(4, 8, 8), decoder=(8, 4, 4), time_steps=3)


@pytest.fixture
def pair16() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.random((2, 16, 16, 16)).astype(np.float32)
