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


@pytest.fixture
def tiny_skip_net():
    """Analog input, a stride-2 padded conv, a transposed conv, and a skip (a -> readout) that carries a delay:
    every edge kind the engines handle, small enough for Lava's stock processes."""
    from spikereg_deploy.network import LayerSpec, NetworkSpec, NeuronSpec

    neuron = NeuronSpec(i_decay=1024, v_decay=128, vth_mant=40)
    spec = NetworkSpec(layers=(
        LayerSpec("input", "input", 1, kernel=1, padding=0),
        LayerSpec("a", "conv", 3, inputs=("input",), neuron=neuron),
        LayerSpec("b", "conv", 4, inputs=("a",), stride=2, padding=1, neuron=neuron),
        LayerSpec("c", "convT", 2, inputs=("b",), kernel=3, stride=2, padding=1, output_padding=1, neuron=neuron),
        LayerSpec("readout", "readout", 3, inputs=("c", "a")),
    ), time_steps=3, input_channels=1)
    rng = np.random.default_rng(4)
    weights = {
        "a": rng.integers(-40, 128, (3, 1, 3, 3, 3)) * 2,
        "b": rng.integers(-60, 100, (4, 3, 3, 3, 3)) * 2,
        "c": rng.integers(-60, 100, (4, 2, 3, 3, 3)) * 2,
        "readout": rng.integers(-50, 50, (3, 5, 3, 3, 3)) * 2,
    }
    return spec, weights, rng


@pytest.fixture(scope="module")
def default_spec():
    """The default U-Net's description (no weights): what the mapper and the counting tests plan for."""
    from spikereg_deploy.unet import UNetConfig, build_unet_spec

    return build_unet_spec(UNetConfig())


@pytest.fixture(scope="module")
def small_spec():
    from spikereg_deploy.unet import UNetConfig, build_unet_spec

    return build_unet_spec(UNetConfig(encoder=(4, 8, 8), decoder=(8, 4, 4), time_steps=3))


def _stored_as(array: np.ndarray, affine: np.ndarray, axes: tuple[int, int, int], flips: tuple[bool, bool, bool]
              ) -> tuple[np.ndarray, np.ndarray]:
    """The same image (same world positions) stored with array axes permuted by `axes` and flipped by `flips`.

    New index i maps to old index: old[axes[a]] = i[a], or n - 1 - i[a] where flipped (written out by hand, so
    the test does not rely on the code it checks).
    """
    out = np.transpose(array, (*axes, *range(3, np.ndim(array))))  # trailing (vector) axes stay last
    for a, flip in enumerate(flips):
        if flip:
            out = np.flip(out, axis=a)
    t = np.zeros((4, 4))
    t[3, 3] = 1.0
    for a, old in enumerate(axes):
        n = array.shape[old]
        t[old, a] = -1.0 if flips[a] else 1.0
        t[old, 3] = n - 1 if flips[a] else 0.0
    return np.ascontiguousarray(out), affine @ t


@pytest.fixture
def stored_as():
    """`stored_as(array, affine, axes, flips)`: the same image stored in another voxel order (orientation tests)."""
    return _stored_as


@pytest.fixture
def small_net(tmp_path, small_config):
    """A seeded small U-Net exported to a .net (16^3 shapes): what the CLI tests simulate."""
    from spikereg_deploy.export.writer import write_net
    from spikereg_deploy.training.snn import seeded_model

    model = seeded_model(small_config, seed=1)
    path = tmp_path / "small.net"
    write_net(path, model.spec, model.integer_weights(), (16, 16, 16))
    return path
