"""Registration pairs read from files: Learn2Reg OASIS, neurite-oasis folders, any two NIfTI files.

Every pair is passed through `preprocess.preprocess_pair` on loading, so training, simulation and evaluation see the
same kind of input as the synthetic pairs (`synthetic.py`), which are born on the network grid. `sources.py` wraps
both kinds as indexable pair sources.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .native import NativeGrid
from .nifti import Volume, check_same_grid, load_label_map, load_volume
from .orientation import resample_onto
from .preprocess import GridTransform, preprocess_pair

__all__ = [
    "RegistrationPair",
    "PairFiles",
    "learn2reg_pair_files",
    "neurite_oasis_pair_files",
    "load_pair",
    "learn2reg_oasis_pairs",
    "neurite_oasis_pairs",
    "pair_from_files",
    "read_pair_list",
]

PathLike = str | os.PathLike[str]
_SPLIT_KEYS = {
    "val": ("registration_val", "validation"),
    "test": ("registration_test",),
    "train": ("training_paired_images",),
}


@dataclass
class RegistrationPair:
    """Fixed and moving images (float32 in [0, 1]) with label maps (int16 or None) on the network grid.

    `affine` maps network-grid voxels to world mm; `transform` (None for the embedded pairs, which are born on
    the network grid) maps results back to the input files' grid with `preprocess.restore_to_grid`; `native` holds
    the pair on the fixed file's grid (None for the embedded pairs), where outputs are written and scores taken.
    """

    fixed: np.ndarray
    moving: np.ndarray
    fixed_labels: np.ndarray | None
    moving_labels: np.ndarray | None
    affine: np.ndarray
    name: str
    transform: GridTransform | None = None
    native: NativeGrid | None = None


@dataclass(frozen=True)
class PairFiles:
    """Paths of one pair before loading; listing these first checks a whole dataset before any heavy work."""

    fixed: Path
    moving: Path
    fixed_labels: Path | None
    moving_labels: Path | None
    name: str
    fixed_mask: Path | None = None
    moving_mask: Path | None = None


# ----------------------------------------------------------------------------------------------- file layouts


def _find_dataset_json(root: Path) -> Path:
    if root.is_file():
        return root
    if not root.is_dir():
        raise DataError("dataset folder not found", root)
    preferred = root / "OASIS_dataset.json"
    if preferred.is_file():
        return preferred
    found = sorted(root.glob("*_dataset.json"))
    if len(found) != 1:
        what = "none" if not found else ", ".join(p.name for p in found)
        raise DataError(f"expected exactly one *_dataset.json (Learn2Reg layout, e.g. OASIS_dataset.json) in this "
                        f"folder, found {what}", root)
    return found[0]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"not a readable JSON file ({err})".splitlines()[0], path) from None
    if not isinstance(data, dict):
        raise DataError("top level of the dataset JSON must be an object", path)
    return data


def _stem(path: str | Path) -> str:
    name = Path(path).name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def learn2reg_pair_files(root: PathLike, split: str = "val") -> list[PairFiles]:
    """List pairs of a Learn2Reg OASIS folder (imagesTr/, labelsTr/, OASIS_dataset.json) without loading them.

    split "val" reads `registration_val` (Learn2Reg 2021+; 19 pairs 0395->0396 ... 0413->0414) or
    `validation`; "test" reads `registration_test`; "train" reads `training_paired_images`, or, when that is
    empty, pairs consecutive `training` images not used in validation. Label paths come from the `training`
    list's "label" entries, else from the image path with imagesTr -> labelsTr (as the official evaluation
    does); a label file that is not there gives None. A listed file that is missing is a DataError naming the
    JSON.
    """
    if split not in _SPLIT_KEYS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(_SPLIT_KEYS)}")
    json_path = _find_dataset_json(Path(root))
    base = json_path.parent
    data = _read_json(json_path)
    label_of: dict[str, str] = {}
    for entry in data.get("training") or []:
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("image"), str)
            and isinstance(entry.get("label"), str)
        ):
            label_of[os.path.normpath(entry["image"])] = entry["label"]

    keys = _SPLIT_KEYS[split]
    key = next((k for k in keys if data.get(k)), None)
    if key is not None:
        entries = data[key]
    elif split == "train" and data.get("training"):
        key = "training"
        val_entries = [e for k in _SPLIT_KEYS["val"] for e in data.get(k) or [] if isinstance(e, dict)]
        val = {os.path.normpath(str(e.get(role, ""))) for e in val_entries for role in ("fixed", "moving")}
        images = [
            e["image"] for e in data["training"] if isinstance(e, dict) and isinstance(e.get("image"), str)
        ]
        images = [im for im in images if os.path.normpath(im) not in val]
        entries = [{"fixed": a, "moving": b} for a, b in zip(images, images[1:], strict=False)]
    else:
        raise DataError(f"has no non-empty pair list {' or '.join(repr(k) for k in keys)}", json_path)
    if not isinstance(entries, list):
        raise DataError(f"{key!r} must be a list of {{'fixed', 'moving'}} entries", json_path)

    def resolve(rel: str, what: str, index: int) -> Path:
        p = (base / rel).resolve() if not os.path.isabs(rel) else Path(rel)
        if not p.is_file():
            raise DataError(f"{key!r} entry {index} names missing {what} file {rel}", json_path)
        return p

    pairs: list[PairFiles] = []
    for i, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("fixed"), str)
            and isinstance(entry.get("moving"), str)
        ):
            raise DataError(f"{key!r} entry {i} must have string 'fixed' and 'moving' paths", json_path)
        paths = [resolve(entry[r], r, i) for r in ("fixed", "moving")]
        labels: list[Path | None] = []
        for role in ("fixed", "moving"):
            rel = label_of.get(os.path.normpath(entry[role]))
            if rel is not None:
                labels.append(resolve(rel, f"{role} label", i))
            else:
                guess = (base / entry[role].replace("imagesTr", "labelsTr")).resolve()
                labels.append(guess if "imagesTr" in entry[role] and guess.is_file() else None)
        masks = [_guess_beside(base, entry[role], "masksTr") for role in ("fixed", "moving")]
        name = f"{_stem(entry['fixed'])}<-{_stem(entry['moving'])}"
        pairs.append(PairFiles(paths[0], paths[1], labels[0], labels[1], name, masks[0], masks[1]))
    return pairs


def _guess_beside(base: Path, image_rel: str, folder: str) -> Path | None:
    """The file of the same name in `folder` instead of imagesTr (Learn2Reg's masksTr/), when it exists."""
    if "imagesTr" not in image_rel:
        return None
    guess = (base / image_rel.replace("imagesTr", folder)).resolve()
    return guess if guess.is_file() else None


def read_pair_list(path: PathLike) -> list[tuple[str, str]]:
    """(fixed, moving) subject names, one pair a line ("FIXED MOVING", whitespace or comma separated; # comments)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"pair list not readable ({type(err).__name__})", p) from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].replace(",", " ").split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DataError(f"line {number}: expected 'FIXED MOVING', got {line.strip()!r}", p)
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise DataError("pair list names no pair", p)
    return pairs


def neurite_oasis_pair_files(
    root: PathLike, image: str = "aligned_norm.nii.gz", labels: str = "aligned_seg35.nii.gz",
    pair_list: PathLike | None = None,
) -> list[PairFiles]:
    """Pairs of a neurite-oasis folder (one folder per subject): every ordered pair of distinct subjects (s0<-s1,
    s1<-s0, s0<-s2, ...; n (n - 1) pairs), or the pairs a `pair_list` file names (`read_pair_list`)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("dataset folder not found", root)
    subjects = {d.name: d for d in sorted(root.iterdir()) if d.is_dir() and (d / image).is_file()}
    if len(subjects) < 2:
        raise DataError(f"found {len(subjects)} subject folder(s) with {image}; need at least 2", root)

    def lab(d: Path) -> Path | None:
        return d / labels if (d / labels).is_file() else None

    if pair_list is None:
        names = [(a, b) for a in subjects for b in subjects if a != b]
    else:
        names = read_pair_list(pair_list)
        for fixed, moving in names:
            for name in (fixed, moving):
                if name not in subjects:
                    raise DataError(f"names subject {name!r}, which has no folder with {image} in {root}", pair_list)
    return [PairFiles(subjects[a] / image, subjects[b] / image, lab(subjects[a]), lab(subjects[b]), f"{a}<-{b}")
            for a, b in names]


def _onto(volume: Volume | None, fixed: Volume, order: int) -> np.ndarray | None:
    """A volume's data on the fixed grid: itself when it is already there, else resampled through world mm."""
    if volume is None:
        return None
    if volume.shape == fixed.shape and np.allclose(volume.affine, fixed.affine, atol=1e-4, rtol=0.0):
        return volume.data
    return resample_onto(volume.data, volume.affine, fixed.affine, fixed.shape, order)


def _load_companion(path: Path | None, image: Volume) -> Volume | None:
    """A label map or brain mask, which must lie on its own image's grid."""
    if path is None:
        return None
    companion = load_label_map(path)
    check_same_grid(companion, image)
    return companion


def load_pair(
    files: PairFiles, target_shape: Sequence[int] | None = None, multiple: int = 1, resolution: float | None = None,
    prealign: bool = False,
) -> RegistrationPair:
    """Load (canonical RAS+ order), check (grids, labels, masks) and preprocess one pair onto the network grid.

    Fixed and moving must share one grid unless `resolution` (mm) is given: then the moving image, its labels and
    mask are resampled onto the fixed grid through world mm (a stated step, `native.moving_resampled`).
    `prealign` first aligns the moving image to the fixed one by an affine (`prealign.py`); the network sees the
    aligned pair, and outputs and scores use the composed field on the original moving image.
    """
    fixed, moving = load_volume(files.fixed), load_volume(files.moving)
    if resolution is None:
        try:
            check_same_grid(moving, fixed)
        except DataError as err:
            raise DataError(f"{err.message}; pass --resolution MM to resample both onto one grid", err.path) from None
    fixed_labels, moving_labels = (_load_companion(files.fixed_labels, fixed),
                                   _load_companion(files.moving_labels, moving))
    fixed_mask, moving_mask = _load_companion(files.fixed_mask, fixed), _load_companion(files.moving_mask, moving)
    moving_data = _onto(moving, fixed, 1)
    assert moving_data is not None and moving.orientation is not None and fixed.orientation is not None
    native = NativeGrid(
        affine=fixed.affine, orientation=fixed.orientation, moving=moving_data,
        fixed_labels=None if fixed_labels is None else fixed_labels.data,
        moving_labels=_onto(moving_labels, fixed, 0),
        fixed_mask=None if fixed_mask is None else fixed_mask.data, moving_mask=_onto(moving_mask, fixed, 0),
        moving_resampled=moving_data is not moving.data, moving_orientation=moving.orientation.code,
        requested_resolution=resolution,
    )
    network_moving, network_moving_labels = moving_data, native.moving_labels
    if prealign:
        from .prealign import apply_affine, estimate_affine
        from .preprocess import normalize_intensity

        try:
            native.prealign = estimate_affine(normalize_intensity(fixed.data), normalize_intensity(moving_data),
                                              native.spacing)
        except RuntimeError as err:  # SimpleITK's own errors: one line naming the pair's moving file
            lines = [line for line in str(err).splitlines() if "ITK ERROR" in line] or str(err).splitlines() or [""]
            reason = lines[0].split("): ", 1)[-1].strip() or "no reason given"
            raise DataError(f"--prealign affine failed: {reason}", moving.path) from None
        network_moving = apply_affine(moving_data, native.prealign, 1)
        if native.moving_labels is not None:
            network_moving_labels = apply_affine(native.moving_labels, native.prealign, 0)
    pre = preprocess_pair(fixed, Volume(network_moving, fixed.affine, fixed.spacing, moving.path), target_shape,
                          multiple=multiple, fixed_labels=native.fixed_labels, moving_labels=network_moving_labels,
                          resolution=resolution)
    return RegistrationPair(
        pre.fixed, pre.moving, pre.fixed_labels, pre.moving_labels, pre.affine, files.name, pre.transform, native
    )


def learn2reg_oasis_pairs(
    root: PathLike, split: str = "val", target_shape: Sequence[int] | None = None, multiple: int = 1
) -> Iterator[RegistrationPair]:
    """Lazily load Learn2Reg OASIS pairs (the list is checked completely before the first pair loads)."""
    files = learn2reg_pair_files(root, split)
    return (load_pair(f, target_shape, multiple) for f in files)


def neurite_oasis_pairs(
    root: PathLike, target_shape: Sequence[int] | None = None, multiple: int = 1
) -> Iterator[RegistrationPair]:
    """Lazily load neurite-oasis consecutive-subject pairs."""
    files = neurite_oasis_pair_files(root)
    return (load_pair(f, target_shape, multiple) for f in files)


def pair_from_files(
    fixed_path: PathLike,
    moving_path: PathLike,
    fixed_labels: PathLike | None = None,
    moving_labels: PathLike | None = None,
    target_shape: Sequence[int] | None = None,
    multiple: int = 1,
    resolution: float | None = None,
    prealign: bool = False,
) -> RegistrationPair:
    """Any two NIfTI images (one grid, or any two with `resolution`) and optional label maps on their images' grids."""
    files = PairFiles(
        Path(fixed_path),
        Path(moving_path),
        None if fixed_labels is None else Path(fixed_labels),
        None if moving_labels is None else Path(moving_labels),
        f"{_stem(fixed_path)}<-{_stem(moving_path)}",
    )
    return load_pair(files, target_shape, multiple, resolution, prealign)
