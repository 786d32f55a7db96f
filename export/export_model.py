"""Export a model (spec + integer weight mantissas) to a .net file and read it back, as `spikereg-export` does."""
from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from spikereg_deploy.network import NetworkSpec

from .reader import LoadedNet, read_net
from .writer import write_net


def export_model(spec: NetworkSpec, weights: Mapping[str, np.ndarray], input_shape: tuple[int, int, int],
                 path: str | os.PathLike[str], description: str = "") -> LoadedNet:
    """Write `path` for volumes of `input_shape` and return the file as read back (validated by the reader).

    A size the network cannot take is refused before anything is written.
    """
    input_shape = tuple(int(n) for n in input_shape)  # type: ignore[assignment]
    spec.geometry(input_shape)
    write_net(path, spec, weights, input_shape, description=description)
    return read_net(path)
