"""spikereg-simulate's outputs on the fixed file's grid: orientation round trip, an ITK field SimpleITK applies to
reproduce the warped image, labels and Dice, the grid statement, and one-line refusals of bad grids."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from spikereg_deploy.cli import simulate_cli
from spikereg_deploy.imaging.pairs import pair_from_files

SHAPE = (16, 24, 16)
AFFINE = np.array([[1.2, 0, 0, -9.0], [0, 1.0, 0, -12.0], [0, 0, 1.5, -11.0], [0, 0, 0, 1]])
PERMUTATION = ((1, 2, 0), (True, False, True))  # axes permuted and two of them flipped (stored as "PIR")


def _brain_pair(seed: int = 0) -> dict[str, np.ndarray]:
    """A blob image pair with two-label maps; intensities in hundreds (not [0, 1]) to see they are kept."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, n) for n in SHAPE), indexing="ij"))
    r_fixed = np.sqrt((grid ** 2).sum(0))
    r_moving = np.sqrt(((grid - np.array([0.15, -0.1, 0.05])[:, None, None, None]) ** 2).sum(0))
    out = {}
    for name, r in (("fixed", r_fixed), ("moving", r_moving)):
        image = np.where(r < 0.8, 300.0 + 200.0 * grid[0] + 20.0 * rng.random(SHAPE), 0.0)
        out[name] = image.astype(np.float32)
        out[f"{name}_labels"] = (np.where(r < 0.8, 1, 0) + np.where(r < 0.4, 1, 0)).astype(np.int16)
    return out


def _write(folder, arrays, transform=None, stored_as=None) -> dict[str, str]:
    paths = {}
    for name, data in arrays.items():
        affine = AFFINE
        if transform is not None:
            data, affine = stored_as(data, AFFINE, *transform)
        paths[name] = str(folder / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(data, affine), paths[name])
    return paths


def _run(net, paths, out, *extra) -> dict:
    argv = [str(net), "--fixed", paths["fixed"], "--moving", paths["moving"], "--fixed-labels",
            paths["fixed_labels"], "--moving-labels", paths["moving_labels"], "-o", str(out), "--engine",
            "reference", *extra]
    assert simulate_cli.main(argv) == 0
    return json.loads((out / "report.json").read_text())


def test_outputs_of_a_permuted_input_are_the_permuted_outputs(tmp_path, small_net, capsys, stored_as):
    arrays = _brain_pair()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    original = _run(small_net, _write(tmp_path / "a", arrays), tmp_path / "ra")
    permuted = _run(small_net, _write(tmp_path / "b", arrays, PERMUTATION, stored_as), tmp_path / "rb")
    console = capsys.readouterr().out
    assert "Dice before / after" in console and "grid: input" in console and "reoriented" in console
    for name in ("displacement.nii.gz", "warped.nii.gz", "warped_labels.nii.gz"):
        a, b = nib.load(str(tmp_path / "ra" / name)), nib.load(str(tmp_path / "rb" / name))
        expected, expected_affine = stored_as(np.asarray(a.dataobj), a.affine, *PERMUTATION)
        np.testing.assert_array_equal(np.asarray(b.dataobj), expected)  # world-mm vectors do not change
        np.testing.assert_allclose(b.affine, expected_affine, atol=1e-5)
    assert original["dice"] == permuted["dice"]
    assert original["grid"]["input_orientation"] == "RAS" and not original["grid"]["reoriented"]
    assert permuted["grid"]["reoriented"] and permuted["grid"]["input_orientation"] != "RAS"
    assert original["grid"]["resampled"] is False and original["grid"]["network_shape"] == list(SHAPE)
    warped = np.asarray(nib.load(str(tmp_path / "ra" / "warped.nii.gz")).dataobj)
    assert warped.max() > 100.0  # the moving image's own intensities, not [0, 1]
    field = nib.load(str(tmp_path / "ra" / "displacement.nii.gz"))
    assert field.shape == (*SHAPE, 1, 3) and field.header["intent_code"] == 1007
    assert set(original["dice"]["per_label"]) == {"1", "2"}


def test_itk_field_applied_by_simpleitk_reproduces_the_warped_image(tmp_path, stored_as):
    """The tool's own output writer with a strong known field (a few voxels, smooth) on a permuted, anisotropic
    fixed file, through --resolution resampling: SimpleITK's DisplacementFieldTransform + linear Resample of the
    moving file gives the tool's warped.nii.gz within 1e-3 of intensities up to ~600 (float32 arithmetic, and
    the two trilinear interpolators)."""
    from spikereg_deploy.simulators.run_folder import write_registration_outputs

    paths = _write(tmp_path, _brain_pair(3), PERMUTATION, stored_as)
    pair = pair_from_files(paths["fixed"], paths["moving"], target_shape=None, multiple=8, resolution=2.0)
    grid = np.stack(np.meshgrid(*(np.linspace(0, np.pi, n) for n in pair.fixed.shape), indexing="ij"))
    disp = np.stack([1.5 * np.sin(grid[1]), -1.0 * np.sin(grid[2]) * np.cos(grid[0]), 0.8 * np.sin(grid[0])])
    out = tmp_path / "out"
    out.mkdir()
    written = write_registration_outputs(out, disp, pair, "itk")
    assert {"displacement.nii.gz", "displacement_itk.nii.gz", "warped.nii.gz"} <= set(written)
    fixed = sitk.ReadImage(paths["fixed"], sitk.sitkFloat64)
    moving = sitk.ReadImage(paths["moving"], sitk.sitkFloat64)
    field = sitk.ReadImage(str(out / "displacement_itk.nii.gz"), sitk.sitkVectorFloat64)
    assert field.GetNumberOfComponentsPerPixel() == 3 and field.GetSize() == fixed.GetSize()
    np.testing.assert_allclose(field.GetDirection(), fixed.GetDirection(), atol=1e-6)
    transform = sitk.DisplacementFieldTransform(field)
    by_itk = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0))
    ours = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "warped.nii.gz"), sitk.sitkFloat64))
    unwarped = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, sitk.Transform(), sitk.sitkLinear, 0.0))
    assert np.abs(ours).max() > 300.0 and np.abs(unwarped - ours).max() > 50.0  # the field changes the image
    np.testing.assert_allclose(by_itk, ours, atol=1e-3)
    wrong = sitk.ReadImage(str(out / "displacement.nii.gz"), sitk.sitkVectorFloat64)  # RAS components: not ITK's
    by_wrong = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, sitk.DisplacementFieldTransform(wrong),
                                                    sitk.sitkLinear, 0.0))
    assert np.abs(by_wrong - ours).max() > 10.0
    # the RAS file is the same field with x and y negated (LPS -> RAS)
    ras = np.asarray(nib.load(str(out / "displacement.nii.gz")).dataobj)
    lps = np.asarray(nib.load(str(out / "displacement_itk.nii.gz")).dataobj)
    np.testing.assert_array_equal(ras, lps * np.array([-1.0, -1.0, 1.0]))
    assert np.abs(ras).max() > 1.0  # mm: a field that moves the image, not a trivial one


def _fails(capsys, argv, *needles) -> str:
    code = simulate_cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and "Traceback" not in "\n".join(err)
    for needle in needles:
        assert needle in err[-1], err[-1]
    return err[-1]


def test_bad_grids_and_images_are_one_line_and_exit_2(tmp_path, small_net, capsys):
    arrays = _brain_pair()
    paths = _write(tmp_path, arrays)
    out = tmp_path / "out"
    base = [str(small_net), "-o", str(out), "--engine", "reference"]
    shifted = str(tmp_path / "shifted.nii.gz")
    moved = AFFINE.copy()
    moved[0, 3] += 3.0
    nib.save(nib.Nifti1Image(arrays["moving"], moved), shifted)
    _fails(capsys, [*base, "--fixed", paths["fixed"], "--moving", shifted], "shifted.nii.gz", "grid differs",
           "--resolution")
    bad_labels = str(tmp_path / "bad_labels.nii.gz")
    nib.save(nib.Nifti1Image(arrays["fixed_labels"][:, :, :8], AFFINE), bad_labels)
    _fails(capsys, [*base, "--fixed", paths["fixed"], "--moving", paths["moving"], "--fixed-labels", bad_labels],
           "bad_labels.nii.gz", "grid differs")
    four_d = str(tmp_path / "four_d.nii.gz")
    nib.save(nib.Nifti1Image(np.stack([arrays["fixed"]] * 2, axis=-1), AFFINE), four_d)
    _fails(capsys, [*base, "--fixed", four_d, "--moving", paths["moving"]], "four_d.nii.gz", "4-D")
    zeros = str(tmp_path / "zeros.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), AFFINE), zeros)
    _fails(capsys, [*base, "--fixed", paths["fixed"], "--moving", zeros], "zeros.nii.gz", "all zero")
    _fails(capsys, [*base, "--fixed", paths["fixed"], "--moving", paths["moving"], "--resolution", "2",
                    "--input-shape", "16", "16", "16"], "not both")
    assert not out.exists()


def test_different_grids_run_with_resolution_and_say_so(tmp_path, small_net, capsys):
    arrays = _brain_pair()
    paths = _write(tmp_path, arrays)
    moved = AFFINE.copy()
    moved[0, 3] += 3.0
    nib.save(nib.Nifti1Image(arrays["moving"], moved), paths["moving"])
    nib.save(nib.Nifti1Image(arrays["moving_labels"], moved), paths["moving_labels"])
    report = _run(small_net, paths, tmp_path / "out", "--resolution", "2")
    grid = report["grid"]
    assert grid["moving_resampled_to_fixed_grid"] and grid["resampled"] and grid["requested_resolution_mm"] == 2.0
    np.testing.assert_allclose(grid["network_spacing_mm"], 2.0, rtol=0.1)
    assert "--resolution 2.0 mm" in capsys.readouterr().out
    assert nib.load(str(tmp_path / "out" / "warped.nii.gz")).shape == SHAPE  # back on the fixed grid
