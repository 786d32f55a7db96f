"""SynthMorph-style training pairs (Hoffmann et al., IEEE TMI 2022) synthesised on the fly from label maps.

Each pair is one label map (a random synthetic one, or an offline atlas from `label_maps.py`) seen through two
independent random smooth diffeomorphisms; each side's image is synthesised from its warped labels: every label
gets a random mean intensity and texture, then a random blur, a smooth multiplicative bias field, a gamma change and
noise. A share of the atlas pairs uses the template's real T1 instead (warped the same way, intensity-augmented),
so the network also sees real anatomy's intensities. Pairs are patches of the training grid (2 mm by default), cut
where a map has brain, because the U-Net is fully convolutional: it registers whole volumes at evaluation.

One difference from SynthMorph: its loss compares label maps, so each side may get its own contrast. This
project's training loss is local NCC between the images, which needs one contrast per pair, so both sides share the
label intensities of their pair (new ones every pair) while blur, bias, gamma and noise are drawn per side.

Pair i depends only on (seed, index), so a resumed run draws the same stream.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import DataError
from .label_maps import LABEL_MAP_NAMES, LabelMap, brain_voxels, label_map
from .pairs import RegistrationPair
from .preprocess import normalize_intensity
from .synthetic import SynthConfig, augment_intensity, random_deformation
from .warp import warp_image, warp_labels


@dataclass(frozen=True)
class LabelSynthConfig:
    """What the pairs are made of and how strongly they vary; lengths in mm (the grid is `spacing` mm)."""

    spacing: float = 2.0
    maps: tuple[str, ...] = LABEL_MAP_NAMES  # offline atlases used (`label_maps.LABEL_MAP_NAMES`)
    random_fraction: float = 0.5  # share of pairs from random synthetic label maps
    image_fraction: float = 0.25  # share of atlas pairs on the template's real T1 (the map that has one)
    random_labels: tuple[int, int] = (8, 24)  # labels of a random map, drawn in this range
    max_displacement_mm: float = 8.0  # peak of each side's random deformation (drawn in [0.5, 1] x this)
    #: each side's random affine placement (as subjects lie in a scanner): rotation about the patch centre up to
    #: this many degrees per axis, shifts up to `max_shift_mm`, scaling up to `max_scaling`; 0 = none
    max_rotation_deg: float = 0.0
    max_shift_mm: float = 0.0
    max_scaling: float = 0.0
    smoothness_mm: float = 16.0  # Gaussian sigma of the velocity noise
    max_blur_mm: float = 2.0  # Gaussian blur sigma drawn in [0, this]
    texture_std: float = 0.08  # within-label intensity std, drawn in [0, this]
    noise_std: float = 0.03  # noise std drawn in [0, this]
    background_dark: float = 0.5  # probability that an atlas map's outside is black (skull-stripped look)

    def validate(self) -> None:
        unknown = [m for m in self.maps if m not in LABEL_MAP_NAMES]
        if unknown:
            raise DataError(f"unknown label map {unknown[0]!r}; choose from {', '.join(LABEL_MAP_NAMES)}")
        if not 0 <= self.random_fraction <= 1 or not 0 <= self.image_fraction <= 1:
            raise DataError("random_fraction and image_fraction must be in [0, 1]")
        if not self.maps and self.random_fraction < 1:
            raise DataError("no label maps given: set random_fraction = 1 or name maps")
        lo, hi = self.random_labels
        if not 2 <= lo <= hi:
            raise DataError(f"random_labels must be two counts 2 <= low <= high, got {self.random_labels}")
        if self.spacing <= 0 or self.max_displacement_mm < 0 or self.smoothness_mm <= 0:
            raise DataError("spacing and smoothness_mm must be positive, max_displacement_mm >= 0")
        if not (0 <= self.max_rotation_deg <= 45 and self.max_shift_mm >= 0 and 0 <= self.max_scaling < 0.5):
            raise DataError("max_rotation_deg must be in [0, 45], max_shift_mm >= 0, max_scaling in [0, 0.5)")

    def affine_reach(self, size: np.ndarray) -> float:
        """The largest displacement (voxels) the affine placement can give inside a `size` box."""
        radius = float(np.linalg.norm(size)) / 2
        turn = 2 * np.sin(np.radians(self.max_rotation_deg) * np.sqrt(3) / 2)
        return radius * (turn + self.max_scaling) + np.sqrt(3) * self.max_shift_mm / self.spacing


def random_label_map(shape: Sequence[int], rng: np.random.Generator, labels: int, sigma: float) -> np.ndarray:
    """SynthMorph's random shapes: `labels` smoothed noise volumes, the label of each voxel its largest (int16)."""
    noise = np.stack([ndimage.gaussian_filter(rng.standard_normal(tuple(shape)), sigma, mode="reflect")
                      for _ in range(labels)])
    return np.argmax(noise, axis=0).astype(np.int16)


def synthesize_image(labels: np.ndarray, means: np.ndarray, stds: np.ndarray, rng: np.random.Generator,
                     cfg: LabelSynthConfig) -> np.ndarray:
    """One side's image from its labels: per-label mean + texture, blur, then bias, gamma and noise; in [0, 1]."""
    image = means[labels] + stds[labels] * rng.standard_normal(labels.shape)
    blur = rng.uniform(0.0, cfg.max_blur_mm / cfg.spacing)
    if blur > 0.05:
        image = ndimage.gaussian_filter(image, blur, mode="nearest")
    intensity = SynthConfig(noise_std=float(rng.uniform(0.0, cfg.noise_std)))
    return augment_intensity(np.clip(image, 0.0, None).astype(np.float32), rng, intensity, everywhere=True)


def random_affine_displacement(size: np.ndarray, rng: np.random.Generator, cfg: LabelSynthConfig) -> np.ndarray:
    """(3, *size) voxels: x -> A (x - c) + c + t - x for a random rotation, scaling and shift about the centre c."""
    from scipy.spatial.transform import Rotation

    rotation = Rotation.from_rotvec(np.radians(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg, 3)))
    linear = rotation.as_matrix() @ np.diag(1 + rng.uniform(-cfg.max_scaling, cfg.max_scaling, 3))
    shift = rng.uniform(-cfg.max_shift_mm, cfg.max_shift_mm, 3) / cfg.spacing
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float64) for n in size), indexing="ij"))
    centred = grid - ((np.asarray(size) - 1) / 2)[:, None, None, None]
    moved = np.einsum("ij,j...->i...", linear - np.eye(3), centred)
    return moved + shift[:, None, None, None]


def _crop_origin(source: LabelMap, spacing: float, size: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random corner of a `size` box centred on a random labelled voxel (so patches hold brain)."""
    voxels = brain_voxels(source.name, spacing)
    return voxels[int(rng.integers(len(voxels)))].astype(np.int64) - size // 2


def _cut(volume: np.ndarray, origin: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The `size` box at `origin`, zero outside the volume."""
    out = np.zeros(tuple(size), dtype=volume.dtype)
    src_lo = np.maximum(origin, 0)
    src_hi = np.minimum(origin + size, volume.shape)
    if np.any(src_hi <= src_lo):
        return out
    dst_lo = src_lo - origin
    dst = tuple(slice(a, b) for a, b in zip(dst_lo, dst_lo + (src_hi - src_lo), strict=True))
    out[dst] = volume[tuple(slice(a, b) for a, b in zip(src_lo, src_hi, strict=True))]
    return out


def label_synth_pair(index: int, shape: Sequence[int] = (32, 32, 32), seed: int = 0,
                     config: LabelSynthConfig | None = None) -> RegistrationPair:
    """Pair `index`: a `shape` patch of one label map under two random deformations, images synthesised."""
    cfg = config or LabelSynthConfig()
    cfg.validate()
    patch = np.array([int(n) for n in shape])
    if patch.size != 3 or patch.min() < 4:
        raise DataError(f"label-synthesis patches need three sizes >= 4, got {tuple(shape)}")
    rng = np.random.default_rng([abs(int(seed)), int(index), 11 if seed >= 0 else 12])
    max_disp = cfg.max_displacement_mm / cfg.spacing
    margin = int(np.ceil(max_disp + cfg.affine_reach(patch))) + 2  # the warps read this far outside the patch
    size = patch + 2 * margin
    use_random = not cfg.maps or rng.uniform() < cfg.random_fraction
    image_src = None
    if use_random:
        labels = random_label_map(size, rng, int(rng.integers(cfg.random_labels[0], cfg.random_labels[1] + 1)),
                                  float(rng.uniform(min(size) / 16, min(size) / 6)))
        name, dark_background = "random", False
    else:
        source = label_map(cfg.maps[int(rng.integers(len(cfg.maps)))], cfg.spacing)
        origin = _crop_origin(source, cfg.spacing, size, rng)
        labels = _cut(np.asarray(source.labels), origin, size)
        if source.image is not None and rng.uniform() < cfg.image_fraction:
            image_src = _cut(np.asarray(source.image), origin, size)
        name, dark_background = source.name, rng.uniform() < cfg.background_dark
    count = int(labels.max()) + 1
    means = rng.uniform(0.0, 1.0, count)
    stds = rng.uniform(0.0, cfg.texture_std, count)
    if dark_background:
        means[0], stds[0] = 0.0, 0.0
    centre = tuple(slice(margin, margin + n) for n in patch)
    sides = []
    for _ in range(2):
        disp, _velocity = random_deformation(size, rng, max_disp, cfg.smoothness_mm / cfg.spacing)
        if cfg.max_rotation_deg or cfg.max_shift_mm or cfg.max_scaling:
            disp = disp + random_affine_displacement(size, rng, cfg)
        warped = warp_labels(labels, disp)
        if image_src is not None:
            image = augment_intensity(warp_image(image_src, disp), rng, SynthConfig())
        else:
            image = synthesize_image(warped, means, stds, rng, cfg)
        sides.append((normalize_intensity(image[centre]), warped[centre].astype(np.int16)))
    (fixed, fixed_lab), (moving, moving_lab) = sides
    affine = np.diag([cfg.spacing] * 3 + [1.0])
    kind = f"{name}-t1" if image_src is not None else name
    return RegistrationPair(fixed, moving, fixed_lab, moving_lab, affine, f"synth-{seed}-{index}:{kind}")
