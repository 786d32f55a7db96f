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
from .nifti import check_same_grid, load_label_map, load_volume
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
    the network grid) maps results back to the input files' grid with `preprocess.restore_to_grid`.
    """

    fixed: np.ndarray
    moving: np.ndarray
    fixed_labels: np.ndarray | None
    moving_labels: np.ndarray | None
    affine: np.ndarray
    name: str
    transform: GridTransform | None = None


@dataclass(frozen=True)
class PairFiles:
    """Paths of one pair before loading; listing these first checks a whole dataset before any heavy work."""

    fixed: Path
    moving: Path
    fixed_labels: Path | None
    moving_labels: Path | None
    name: str


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
        raise DataError("expected OASIS_dataset.json (Learn2Reg layout) in this folder", root)
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
        name = f"{_stem(entry['fixed'])}<-{_stem(entry['moving'])}"
        pairs.append(PairFiles(paths[0], paths[1], labels[0], labels[1], name))
    return pairs


def neurite_oasis_pair_files(
    root: PathLike, image: str = "aligned_norm.nii.gz", labels: str = "aligned_seg35.nii.gz"
) -> list[PairFiles]:
    """Consecutive-subject pairs (s0<-s1, s1<-s2, ...) of a neurite-oasis folder (one folder per subject)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("dataset folder not found", root)
    subjects = sorted(d for d in root.iterdir() if d.is_dir() and (d / image).is_file())
    if len(subjects) < 2:
        raise DataError(f"found {len(subjects)} subject folder(s) with {image}; need at least 2", root)

    def lab(d: Path) -> Path | None:
        return d / labels if (d / labels).is_file() else None

    return [
        PairFiles(a / image, b / image, lab(a), lab(b), f"{a.name}<-{b.name}")
        for a, b in zip(subjects, subjects[1:], strict=False)
    ]


def load_pair(
    files: PairFiles, target_shape: Sequence[int] | None = None, multiple: int = 1
) -> RegistrationPair:
    """Load, check (grids, labels) and preprocess one pair onto the network grid."""
    fixed, moving = load_volume(files.fixed), load_volume(files.moving)
    check_same_grid(fixed, moving)
    labs = []
    for path, image in ((files.fixed_labels, fixed), (files.moving_labels, moving)):
        if path is None:
            labs.append(None)
            continue
        lab = load_label_map(path)
        check_same_grid(lab, image)
        labs.append(lab)
    pre = preprocess_pair(
        fixed, moving, target_shape, multiple=multiple, fixed_labels=labs[0], moving_labels=labs[1]
    )
    return RegistrationPair(
        pre.fixed, pre.moving, pre.fixed_labels, pre.moving_labels, pre.affine, files.name, pre.transform
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
) -> RegistrationPair:
    """Any two NIfTI images on the same grid (and optional label maps on that grid) as one pair."""
    files = PairFiles(
        Path(fixed_path),
        Path(moving_path),
        None if fixed_labels is None else Path(fixed_labels),
        None if moving_labels is None else Path(moving_labels),
        f"{_stem(fixed_path)}<-{_stem(moving_path)}",
    )
    return load_pair(files, target_shape, multiple)
