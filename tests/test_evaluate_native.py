"""spikereg-evaluate on file layouts: --split, brain masks, pair lists, scores on the native label grid, the grid
statement, and the Learn2Reg error naming what is accepted."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spikereg_deploy.cli import evaluate_cli
from spikereg_deploy.export.writer import write_net
from spikereg_deploy.training.snn import seeded_model

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
SUBJECTS = ("0001", "0002", "0395", "0396")


@pytest.fixture
def small_net(tmp_path, small_config) -> Path:
    model = seeded_model(small_config, seed=1)
    path = tmp_path / "small.net"
    write_net(path, model.spec, model.integer_weights(), (16, 16, 16))
    return path


def _save(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, AFFINE), str(path))


def _subject(seed: int, shape=(20, 20, 20)) -> tuple[np.ndarray, np.ndarray]:
    grid = np.stack(np.meshgrid(*(np.arange(n) - (n - 1) / 2 for n in shape), indexing="ij"))
    r = np.sqrt((grid ** 2).sum(0)) + np.random.default_rng(seed).uniform(-0.7, 0.7)
    labels = (np.where(r < 7, 1, 0) + np.where(r < 4, 1, 0)).astype(np.int16)
    return (labels * 50.0 + 5.0 * (labels > 0)).astype(np.float32), labels


def make_l2r(root: Path, with_masks: bool = True) -> None:
    for i, s in enumerate(SUBJECTS):
        image, labels = _subject(i)
        _save(root / "imagesTr" / f"OASIS_{s}_0000.nii.gz", image)
        _save(root / "labelsTr" / f"OASIS_{s}_0000.nii.gz", labels)
        if with_masks:
            _save(root / "masksTr" / f"OASIS_{s}_0000.nii.gz", (labels > 0).astype(np.float32))
    spec = {"training": [{"image": f"./imagesTr/OASIS_{s}_0000.nii.gz", "label": f"./labelsTr/OASIS_{s}_0000.nii.gz"}
                         for s in SUBJECTS],
            "registration_val": [{"fixed": "./imagesTr/OASIS_0395_0000.nii.gz",
                                  "moving": "./imagesTr/OASIS_0396_0000.nii.gz"}]}
    (root / "MyData_dataset.json").write_text(json.dumps(spec))


def test_l2r_split_masks_and_native_scores(tmp_path, small_net, capsys):
    make_l2r(tmp_path / "l2r")
    base = [str(small_net), "--data", f"l2r:{tmp_path / 'l2r'}", "--input-shape", "16", "16", "16"]
    assert evaluate_cli.main([*base, "-o", str(tmp_path / "val")]) == 0
    console = capsys.readouterr().out
    assert "scored on the fixed image's native label grid" in console and "grid: input 20x20x20" in console
    result = json.loads((tmp_path / "val" / "evaluation.json").read_text())
    assert result["split"] == "val" and [r["pair"] for r in result["per_pair"]] == ["OASIS_0395_0000<-OASIS_0396_0000"]
    row = result["per_pair"][0]
    assert row["scored_on"] == "native fixed label grid" and 0.0 < row["mask_dice"] <= 1.0
    grid = result["grid_of_first_pair"]  # the 14^3 foreground box fits into 16^3: cropped and padded, not resampled
    assert grid["resampled"] is False and grid["crop_start"] == [3, 3, 3] and grid["network_spacing_mm"] == [2.0] * 3
    assert (tmp_path / "val" / "pair.png").stat().st_size > 0
    assert evaluate_cli.main([*base, "--split", "train", "-o", str(tmp_path / "train")]) == 0
    train = json.loads((tmp_path / "train" / "evaluation.json").read_text())
    assert [r["pair"] for r in train["per_pair"]] == ["OASIS_0001_0000<-OASIS_0002_0000"]  # not the val subjects


def test_l2r_error_names_what_is_accepted(tmp_path, capsys):
    make_l2r(tmp_path, with_masks=False)
    (tmp_path / "Other_dataset.json").write_text("{}")
    code = evaluate_cli.main(["--data", f"l2r:{tmp_path}", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "exactly one *_dataset.json" in err[0] and "MyData_dataset.json, Other_dataset.json" in err[0]


def test_neurite_pair_list_and_resolution(tmp_path, small_net, capsys):
    for i, name in enumerate(("s0", "s1", "s2")):
        image, labels = _subject(i, shape=(16, 16, 16))
        _save(tmp_path / "neurite" / name / "aligned_norm.nii.gz", image)
        _save(tmp_path / "neurite" / name / "aligned_seg35.nii.gz", labels)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("s2 s0\ns0, s2\n")
    assert evaluate_cli.main([str(small_net), "--data", f"neurite:{tmp_path / 'neurite'}", "--pair-list", str(pairs),
                              "--resolution", "4", "-o", str(tmp_path / "o")]) == 0
    result = json.loads((tmp_path / "o" / "evaluation.json").read_text())
    assert [r["pair"] for r in result["per_pair"]] == ["s2<-s0", "s0<-s2"]
    grid = result["grid_of_first_pair"]
    assert grid["resampled"] is True and grid["network_shape"] == [8, 8, 8]  # the box of 2 mm voxels at 4 mm
    assert grid["requested_resolution_mm"] == 4.0
    assert "--resolution 4.0 mm" in capsys.readouterr().out
    code = evaluate_cli.main([str(small_net), "--data", "embedded", "--resolution", "4", "-o", str(tmp_path / "x")])
    assert code == 2 and "--resolution applies to file pairs" in capsys.readouterr().err


def test_scores_of_a_permuted_copy_are_equal(tmp_path, small_net, stored_as):
    """The same Learn2Reg folder stored in another voxel order (identical in world space) scores the same."""
    make_l2r(tmp_path / "a")
    for path in sorted((tmp_path / "a").rglob("*.nii.gz")):
        img = nib.load(str(path))
        data, affine = stored_as(np.asarray(img.dataobj), img.affine, (2, 0, 1), (False, True, True))
        _save_with(tmp_path / "b" / path.relative_to(tmp_path / "a"), data, affine)
    (tmp_path / "b" / "MyData_dataset.json").write_text((tmp_path / "a" / "MyData_dataset.json").read_text())
    rows = []
    for name in ("a", "b"):
        assert evaluate_cli.main([str(small_net), "--data", f"l2r:{tmp_path / name}", "--input-shape", "16", "16",
                                  "16", "-o", str(tmp_path / f"out_{name}")]) == 0
        rows.append(json.loads((tmp_path / f"out_{name}" / "evaluation.json").read_text())["per_pair"])
    assert rows[0] == rows[1]


def _save_with(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def test_prealign_in_evaluate(tmp_path, small_net, capsys):
    """--prealign affine runs the affine stage on each file pair, says so, and keeps its own results key."""
    make_l2r(tmp_path / "l2r")
    base = [str(small_net), "--data", f"l2r:{tmp_path / 'l2r'}", "--input-shape", "16", "16", "16"]
    assert evaluate_cli.main([*base, "--prealign", "affine", "-o", str(tmp_path / "a")]) == 0
    assert "pre-aligned by an affine" in capsys.readouterr().out
    grid = json.loads((tmp_path / "a" / "evaluation.json").read_text())["grid_of_first_pair"]
    assert "SimpleITK" in grid["prealign"]["method"] and len(grid["prealign"]["voxel_matrix"]) == 4
    code = evaluate_cli.main([str(small_net), "--data", "embedded", "--prealign", "affine", "-o", str(tmp_path / "x")])
    assert code == 2 and "--prealign applies to file pairs" in capsys.readouterr().err
