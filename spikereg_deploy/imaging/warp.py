"""Dense warping, composition and velocity integration on the CPU (numpy/scipy).

Convention used everywhere in the project: a displacement field `disp` has shape (3, D, H, W), is measured in
voxels of the grid it lives on, and maps the fixed grid into the moving image:

    warped(x) = moving(x + disp(x))

so the registration network's output can be applied to the moving image without inverting anything.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["identity_grid", "warp_image", "warp_labels", "compose", "integrate_velocity"]


def _check_disp(disp: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    disp = np.asarray(disp)
    if disp.ndim != 4 or disp.shape[0] != 3:
        raise ValueError(f"displacement must have shape (3, D, H, W), got {disp.shape}")
    if shape is not None and tuple(disp.shape[1:]) != tuple(shape):
        raise ValueError(f"displacement grid {disp.shape[1:]} does not match volume {tuple(shape)}")
    return disp


def identity_grid(shape: tuple[int, ...]) -> np.ndarray:
    """Voxel coordinates of every grid point, shape (3, D, H, W), float64 (units: voxels)."""
    return np.stack(np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij"))


def _sample(volume: np.ndarray, coords: np.ndarray, order: int) -> np.ndarray:
    return ndimage.map_coordinates(volume, coords, order=order, mode="nearest")


def warp_image(image: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """Trilinear warp: out(x) = image(x + disp(x)); disp in voxels, out has image's units, float32.

    Samples outside the volume take the nearest edge value (mode 'nearest'), so borders do not darken.
    """
    image = np.asarray(image)
    disp = _check_disp(disp, image.shape)
    coords = identity_grid(image.shape) + disp
    return _sample(image.astype(np.float32, copy=False), coords, order=1).astype(np.float32, copy=False)


def warp_labels(labels: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """Nearest-neighbour warp of an integer label map (disp in voxels); keeps the input dtype.

    Nearest neighbour never invents labels that are not in the input, which linear interpolation would.
    """
    labels = np.asarray(labels)
    disp = _check_disp(disp, labels.shape)
    coords = identity_grid(labels.shape) + disp
    return _sample(labels, coords, order=0).astype(labels.dtype, copy=False)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Displacement (voxels) of phi_outer o phi_inner: c(x) = inner(x) + outer(x + inner(x)).

    With this convention, warp_image(warp_image(m, outer), inner) ~= warp_image(m, compose(outer, inner)).
    """
    outer = _check_disp(outer)
    inner = _check_disp(inner, outer.shape[1:])
    coords = identity_grid(outer.shape[1:]) + inner
    moved = np.stack([_sample(outer[i].astype(np.float64, copy=False), coords, order=1) for i in range(3)])
    return (inner + moved).astype(np.result_type(outer.dtype, inner.dtype), copy=False)


def integrate_velocity(velocity: np.ndarray, steps: int = 7) -> np.ndarray:
    """Exponentiate a stationary velocity field (voxels) by scaling and squaring; returns a displacement
    (voxels).

    Halving `steps` times makes each step small enough to be invertible, and squaring keeps it so: the result
    of a smooth velocity is a diffeomorphism, and integrating -velocity gives its inverse.
    """
    velocity = _check_disp(velocity)
    if steps < 0:
        raise ValueError("steps must be >= 0")
    disp = velocity.astype(np.float64) / (2.0**steps)
    for _ in range(steps):
        disp = compose(disp, disp)
    return disp
