"""An affine pre-alignment of the moving image onto the fixed one, before the network registers what is left.

Why: a network trained on smooth warps of a few mm does not undo how a subject lies in the scanner (rotations of a
few degrees plus shifts); the native benchmark measured it (docs/native-resolution.md). Classical pipelines
(ANTs' SyN, SynthMorph's joint model) run an affine stage first. This one is SimpleITK's registration framework
(Mattes mutual information, so contrasts may differ; three resolution levels; a moments-centred start), run with
one thread and a fixed sampling seed so that the same pair gives the same matrix. It runs on the host: on Loihi it
is a host step, not a network layer, and the report says so.

Both images lie on the fixed grid (canonical voxel order), so the result is a voxel map M: fixed voxel x -> moving
voxel M x. The network then registers fixed to moving(M .); its displacement u composes with M into the field that
is written and scored: d(x) = M (x + u(x)) - x (`compose_with_prealign`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["estimate_affine", "apply_affine", "compose_with_prealign", "PREALIGN_METHOD"]

PREALIGN_METHOD = "affine (SimpleITK, Mattes mutual information, 3 levels, host step)"
_SEED = 1  # SimpleITK reads seed 0 as "the wall clock"


def _sitk_image(volume: np.ndarray, spacing: tuple[float, float, float]):
    import SimpleITK as sitk

    # GetImageFromArray reads numpy (z, y, x): transpose so that ITK index i runs along array axis 0.
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(volume, dtype=np.float32).transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in spacing])
    return image


def estimate_affine(fixed: np.ndarray, moving: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """(4, 4) voxel map fixed voxel -> moving voxel for two (D, H, W) images on one grid of `spacing` mm."""
    import SimpleITK as sitk

    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # one thread: the same matrix on every machine
    try:
        f, m = _sitk_image(fixed, spacing), _sitk_image(moving, spacing)
        start = sitk.CenteredTransformInitializer(f, m, sitk.AffineTransform(3),
                                                  sitk.CenteredTransformInitializerFilter.MOMENTS)
        method = sitk.ImageRegistrationMethod()
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(0.25, _SEED)
        method.SetInterpolator(sitk.sitkLinear)
        method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=200,
                                                        gradientMagnitudeTolerance=1e-8)
        method.SetOptimizerScalesFromPhysicalShift()
        method.SetShrinkFactorsPerLevel([4, 2, 1])
        method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
        method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        method.SetInitialTransform(start, inPlace=True)
        method.Execute(f, m)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    # ITK maps fixed physical points p (index * spacing, origin 0) to moving points: A (p - c) + c + t.
    linear = np.asarray(start.GetMatrix(), dtype=np.float64).reshape(3, 3)
    center, shift = np.asarray(start.GetCenter()), np.asarray(start.GetTranslation())
    scale = np.diag(np.asarray(spacing, dtype=np.float64))
    inverse_scale = np.diag(1.0 / np.asarray(spacing, dtype=np.float64))
    out = np.eye(4)
    out[:3, :3] = inverse_scale @ linear @ scale
    out[:3, 3] = inverse_scale @ (center + shift - linear @ center)
    return out


def apply_affine(volume: np.ndarray, matrix: np.ndarray, order: int) -> np.ndarray:
    """`volume` resampled at M x for every voxel x of its grid (order 1: images, 0: labels); edge values outside."""
    from scipy.ndimage import affine_transform

    return affine_transform(np.asarray(volume), matrix[:3, :3], offset=matrix[:3, 3], order=order, mode="nearest")


def compose_with_prealign(disp: np.ndarray, matrix: np.ndarray | None) -> np.ndarray:
    """(3, D, H, W) displacement u of the pre-aligned pair -> the field of the original pair, d(x) = M(x+u) - x."""
    if matrix is None:
        return disp
    from .warp import identity_grid

    grid = identity_grid(disp.shape[1:])
    points = grid + disp
    mapped = np.einsum("ij,j...->i...", matrix[:3, :3], points) + matrix[:3, 3].reshape(3, 1, 1, 1)
    return mapped - grid
