"""Hand-computed cases for the registration metrics (Dice, HD95, Jacobian figures)."""

from __future__ import annotations

import numpy as np
import pytest

from spikereg_deploy.imaging.warp import warp_labels
from spikereg_deploy.metrics import (
    count_nonpositive_jacobian,
    dice_per_label,
    fraction_nonpositive_jacobian,
    hd95,
    hd95_per_label,
    jacobian_determinant,
    label_list,
    mean_dice,
    sdlogj_learn2reg,
    sdlogj_textbook,
)

N = 16


def box(shape=(N, N, N), lo=(4, 4, 4), hi=(12, 12, 12), value=1) -> np.ndarray:
    out = np.zeros(shape, dtype=np.int16)
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = value
    return out


def fold_field() -> np.ndarray:
    """u_0 depends on x only: 0 up to x=4, slope -2 from x=4 to x=8, constant after.

    Central differences give du0/dx = -1 at x=4 and x=8 (det 0) and -2 at x=5,6,7 (det -1): 5 slices with
    det<=0, 3 with det<0; each slice has N*N voxels.
    """
    x = np.arange(N, dtype=np.float64)
    u0 = np.where(x <= 4, 0.0, np.where(x <= 8, -2.0 * (x - 4), -8.0))
    disp = np.zeros((3, N, N, N))
    disp[0] = u0[:, None, None]
    return disp


def test_identity_field_is_perfect():
    labels = box()
    labels[6:9, 6:9, 6:9] = 2
    disp = np.zeros((3, N, N, N))
    warped = warp_labels(labels, disp)
    np.testing.assert_array_equal(dice_per_label(labels, warped), [1.0, 1.0])
    assert mean_dice(labels, warped) == 1.0
    np.testing.assert_array_equal(jacobian_determinant(disp), np.ones((N, N, N)))
    assert sdlogj_learn2reg(disp) == 0.0
    assert sdlogj_textbook(disp) == 0.0
    assert fraction_nonpositive_jacobian(disp) == 0.0
    assert count_nonpositive_jacobian(disp) == 0
    np.testing.assert_array_equal(hd95_per_label(labels, warped), [0.0, 0.0])


def test_integer_shift_of_a_box_gives_hand_dice():
    # an 8^3 box moved by 2 voxels along axis 0 overlaps in 6*8*8 = 384 voxels: Dice = 2*384/(512+512) = 0.75
    moving = box()
    disp = np.zeros((3, N, N, N))
    disp[0] = 2.0  # warped(x) = moving(x + 2): the box moves to [2, 10)
    warped = warp_labels(moving, disp)
    np.testing.assert_array_equal(warped, box(lo=(2, 4, 4), hi=(10, 12, 12)))
    assert dice_per_label(moving, warped)[0] == pytest.approx(0.75)


def test_dice_label_conventions():
    fixed = box(value=1)
    fixed[0, 0, 0] = 3
    warped = box(value=1)
    # scored labels come from the fixed map; an explicit label absent from both is NaN, ignored by the mean
    np.testing.assert_array_equal(label_list(fixed), [1, 3])
    scores = dice_per_label(fixed, warped, labels=[1, 2, 3])
    assert scores[0] == 1.0 and np.isnan(scores[1]) and scores[2] == 0.0
    assert mean_dice(fixed, warped, labels=[1, 2, 3]) == pytest.approx(0.5)
    # Learn2Reg's official rule: NaN when the unwarped moving map lacks the label
    moving = box(value=1)
    assert np.isnan(dice_per_label(fixed, warped, moving=moving)[1])
    assert mean_dice(fixed, warped, moving=moving) == 1.0
    assert np.isnan(mean_dice(np.zeros((4, 4, 4)), np.zeros((4, 4, 4))))


def test_known_fold_gives_exact_count():
    disp = fold_field()
    det = jacobian_determinant(disp)
    per_slice = det[:, 0, 0]
    np.testing.assert_allclose(per_slice[[4, 5, 6, 7, 8]], [0.0, -1.0, -1.0, -1.0, 0.0])
    assert count_nonpositive_jacobian(disp) == 5 * N * N
    assert int(np.count_nonzero(det < 0)) == 3 * N * N
    assert fraction_nonpositive_jacobian(disp) == pytest.approx(5 / N)


def test_linear_field_has_constant_determinant():
    x = np.arange(N, dtype=np.float64)
    disp = np.zeros((3, N, N, N))
    disp[1] = 0.5 * x[None, :, None]  # stretch by 1.5 along axis 1
    np.testing.assert_allclose(jacobian_determinant(disp), 1.5)
    assert sdlogj_textbook(disp) == pytest.approx(0.0, abs=1e-12)
    assert sdlogj_learn2reg(disp) == pytest.approx(0.0, abs=1e-12)
    disp[1] = -2.0 * x[None, :, None]  # reflection: folded everywhere
    assert fraction_nonpositive_jacobian(disp) == 1.0
    assert np.isnan(sdlogj_textbook(disp))


def test_sdlogj_learn2reg_by_hand():
    # u0 = c x^2 / 2: central differences are exact for a quadratic, so det J = 1 + c x in every voxel.
    # Learn2Reg crops 2 voxels per side and takes std(log(det + 3)) over the remaining voxels.
    c = 0.05
    x = np.arange(N, dtype=np.float64)
    disp = np.zeros((3, N, N, N))
    disp[0] = (c * x**2 / 2)[:, None, None]
    kept = x[2:-2]
    expected = np.std(np.log(1 + c * kept + 3))  # every slice has the same number of voxels
    assert sdlogj_learn2reg(disp) == pytest.approx(expected, rel=1e-12)
    inner = x[1:-1]  # np.gradient is one-sided at the border: only interior slices are exactly 1 + c x
    np.testing.assert_allclose(jacobian_determinant(disp)[1:-1, 0, 0], 1 + c * inner)
    assert sdlogj_textbook(disp) > sdlogj_learn2reg(disp)  # the +3 shift compresses the spread


def test_hd95_of_offset_plates():
    # two one-voxel-thick plates 3 voxels apart: every surface voxel is exactly 3 voxels from the other plate
    a = box(lo=(5, 4, 4), hi=(6, 12, 12))
    b = box(lo=(8, 4, 4), hi=(9, 12, 12))
    assert hd95(a, b) == pytest.approx(3.0)
    assert hd95(a, b, spacing=(2.0, 1.0, 1.0)) == pytest.approx(6.0)  # spacing along the offset axis: mm
    assert hd95(a, b, spacing=(1.0, 0.5, 0.5)) == pytest.approx(3.0)


def test_hd95_per_label_and_missing():
    a = box(lo=(5, 4, 4), hi=(6, 12, 12), value=1)
    a[12:14, 12:14, 12:14] = 2
    b = box(lo=(7, 4, 4), hi=(8, 12, 12), value=1)  # label 1 offset by 2, label 2 missing from b
    scores = hd95_per_label(a, b)
    assert scores[0] == pytest.approx(2.0) and np.isnan(scores[1])
    assert hd95(a, b) == pytest.approx(2.0)


def test_bad_shapes_are_programming_errors():
    with pytest.raises(ValueError):
        jacobian_determinant(np.zeros((N, N, N, 3)))
    with pytest.raises(ValueError):
        dice_per_label(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))
