"""Canonical orientation, world-mm fields, the edge-extended field and Dice on the native label grid, by hand."""
from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest

from spikereg_deploy.evaluation import pair_metrics
from spikereg_deploy.imaging.native import mm_to_voxels, ras_to_lps, voxels_to_mm
from spikereg_deploy.imaging.nifti import load_volume
from spikereg_deploy.imaging.orientation import orientation_of, slice_plane
from spikereg_deploy.imaging.pairs import PairFiles, load_pair
from spikereg_deploy.imaging.preprocess import plan_grid, plan_grid_at_resolution, restore_to_grid
from spikereg_deploy.metrics import count_nonpositive_jacobian


def test_every_storage_order_loads_as_the_same_canonical_volume(tmp_path, stored_as):
    rng = np.random.default_rng(0)
    data = rng.random((5, 6, 7)).astype(np.float32) + 0.1
    affine = np.diag([2.0, 1.5, 3.0, 1.0])
    affine[:3, 3] = (-10.0, 4.0, 7.0)
    reference = load_volume(_save(tmp_path / "ref.nii.gz", data, affine))
    for k, (axes, flips) in enumerate(itertools.product(itertools.permutations(range(3)),
                                                        itertools.product((False, True), repeat=3))):
        stored, stored_affine = stored_as(data, affine, axes, flips)
        vol = load_volume(_save(tmp_path / f"v{k}.nii.gz", stored, stored_affine))
        np.testing.assert_array_equal(vol.data, reference.data)
        np.testing.assert_allclose(vol.affine, reference.affine, atol=1e-5)
        assert vol.spacing == pytest.approx((2.0, 1.5, 3.0))
        np.testing.assert_array_equal(vol.orientation.from_canonical(vol.data), stored)  # and back
        vectors = np.stack([vol.data] * 3, axis=-1)  # trailing vector components are carried along
        np.testing.assert_array_equal(vol.orientation.from_canonical(vectors)[..., 1], stored)


def test_slice_planes_are_named_from_the_affine(stored_as):
    assert [slice_plane(np.eye(4), a) for a in range(3)] == ["sagittal", "coronal", "axial"]
    _, affine = stored_as(np.zeros((2, 3, 4)), np.eye(4), (2, 0, 1), (True, False, False))
    assert [slice_plane(affine, a) for a in range(3)] == ["axial", "sagittal", "coronal"]
    assert orientation_of(affine, (4, 2, 3)).code == "IRA"


def test_world_mm_conversion_and_lps_components():
    affine = np.array([[0.0, -2.0, 0.0, 5.0], [1.5, 0.0, 0.0, 1.0], [0.0, 0.0, 3.0, 2.0], [0, 0, 0, 1]])
    disp = np.zeros((3, 2, 2, 2))
    disp[0] = 1.0  # one voxel along array axis 0 = 1.5 mm towards Anterior
    disp[1] = -1.0  # minus one voxel along axis 1 = +2 mm towards Right
    field = voxels_to_mm(disp, affine)
    np.testing.assert_allclose(field[0, 0, 0], [2.0, 1.5, 0.0])
    np.testing.assert_allclose(ras_to_lps(field)[0, 0, 0], [-2.0, -1.5, 0.0])
    np.testing.assert_allclose(mm_to_voxels(field[:, :, :, None, :], affine), disp)


def test_field_is_extended_outside_the_crop_box_without_folding():
    """A field of 3 voxels inside the crop box: zero outside (the old behaviour) folds at the faces, edge values do
    not, and the voxels outside carry the face's value."""
    shape = (20, 20, 20)
    t = plan_grid(shape, (8, 8, 8), multiple=8, crop=((4, 4, 4), (16, 16, 16)))
    disp = np.zeros((3, 8, 8, 8), np.float32)
    disp[0] = 2.0  # network voxels; x scale 12/8 = 1.5 -> 3 input voxels
    back = restore_to_grid(disp, t, "displacement")
    np.testing.assert_allclose(back[0], 3.0)
    np.testing.assert_allclose(back[1:], 0.0)
    assert count_nonpositive_jacobian(back) == 0
    zeroed = back.copy()
    outside = np.ones(shape, bool)
    outside[4:16, 4:16, 4:16] = False
    zeroed[:, outside] = 0.0
    assert count_nonpositive_jacobian(zeroed) > 0  # what the zeroed faces did


def test_resolution_plans_the_spacing_asked_for():
    t = plan_grid_at_resolution((30, 20, 10), (1.0, 1.5, 3.0), 2.0, multiple=8)
    assert t.resampled_shape == (15, 15, 15) and t.target_shape == (16, 16, 16)
    np.testing.assert_allclose(np.array([1.0, 1.5, 3.0]) * t.scale, 2.0)


def _save(path, data, affine=None) -> str:
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), str(path))
    return str(path)


def test_dice_on_the_native_label_grid_by_hand(tmp_path):
    """32^3 at 1 mm, network at 2 mm (scale 2 exactly): a network displacement of 1 voxel along x is 2 native
    voxels, which undoes the moving labels' shift of 2 voxels; Dice before is the cubes' overlap, by hand."""
    shape = (32, 32, 32)
    fixed_labels = np.zeros(shape, np.int16)
    fixed_labels[8:16, 8:16, 8:16] = 1  # 8^3 cube
    fixed_labels[20:26, 8:14, 8:14] = 2  # 6^3 cube
    moving_labels = np.zeros(shape, np.int16)
    moving_labels[2:] = fixed_labels[:-2]  # moving(x + 2) = fixed(x)
    rng = np.random.default_rng(1)
    image = (1.0 + rng.random(shape)).astype(np.float32)  # no zero voxel: the crop box is the whole grid
    files = PairFiles(*(tmp_path / n for n in ("f.nii.gz", "m.nii.gz", "fl.nii.gz", "ml.nii.gz")), "p",
                      tmp_path / "fm.nii.gz", tmp_path / "mm.nii.gz")
    for path, data in zip((files.fixed, files.moving, files.fixed_labels, files.moving_labels, files.fixed_mask,
                           files.moving_mask), (image, image, fixed_labels, moving_labels, fixed_labels != 0,
                                                moving_labels != 0), strict=True):
        _save(path, data.astype(np.float32) if data.dtype == bool else data)
    pair = load_pair(files, multiple=8, resolution=2.0)
    assert pair.fixed.shape == (16, 16, 16) and pair.transform.scale == (2.0, 2.0, 2.0)
    disp = np.zeros((3, 16, 16, 16))
    disp[0] = 1.0
    m = pair_metrics(pair, disp)
    assert m["scored_on"] == "native fixed label grid"
    assert m["dice"] == pytest.approx(1.0) and m["mask_dice"] == pytest.approx(1.0)
    before_1 = 2 * (6 * 8 * 8) / (2 * 8 ** 3)  # the 8^3 cube shifted by 2 along x overlaps 6 x 8 x 8
    before_2 = 2 * (4 * 6 * 6) / (2 * 6 ** 3)
    assert m["dice_before"] == pytest.approx((before_1 + before_2) / 2)
    assert m["hd95"] == pytest.approx(0.0)
    half = pair_metrics(pair, disp * 0.5)  # 1 native voxel of the 2: overlap 7/8 and 5/6, by hand
    assert half["dice"] == pytest.approx((7 / 8 + 5 / 6) / 2)
    assert half["hd95"] == pytest.approx(1.0)  # 1 mm: the surfaces one native voxel apart
