"""--prealign affine: the SimpleITK affine stage recovers a known affine, is deterministic, composes with the
network's field as d(x) = M(x + u(x)) - x, and `spikereg-simulate` uses the composed field for every output."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from spikereg_deploy.cli import simulate_cli
from spikereg_deploy.imaging.prealign import apply_affine, compose_with_prealign, estimate_affine

SHAPE = (32, 32, 32)


def _phantom() -> np.ndarray:
    """An asymmetric smooth head-like phantom: an ellipsoid with two off-centre inner blobs of other intensities."""
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, n) for n in SHAPE), indexing="ij"))
    x, y, z = grid
    image = np.where((x / 0.75) ** 2 + (y / 0.6) ** 2 + (z / 0.5) ** 2 < 1, 0.5, 0.0)
    image = image + 0.4 * np.exp(-((x - 0.3) ** 2 + (y + 0.2) ** 2 + z ** 2) / 0.02)
    image = image + 0.3 * np.exp(-((x + 0.25) ** 2 + (y - 0.25) ** 2 + (z - 0.15) ** 2) / 0.03)
    return image.astype(np.float32)


def _rotation(degrees: float, shift: tuple[float, float, float]) -> np.ndarray:
    """A voxel map rotating about the grid centre (axes 0-1) and shifting: fixed voxel -> moving voxel."""
    a = np.deg2rad(degrees)
    linear = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    centre = (np.array(SHAPE) - 1) / 2
    out = np.eye(4)
    out[:3, :3] = linear
    out[:3, 3] = centre - linear @ centre + np.array(shift)
    return out


def test_compose_is_m_of_x_plus_u_minus_x():
    shift = np.eye(4)
    shift[:3, 3] = (2.0, -1.0, 0.5)
    u = np.zeros((3, 4, 5, 6))
    np.testing.assert_allclose(compose_with_prealign(u, shift)[:, 1, 2, 3], [2.0, -1.0, 0.5])
    u[:, 1, 2, 3] = (0.25, 0.0, -0.5)
    scale = np.diag([2.0, 1.0, 1.0, 1.0])
    # x = (1, 2, 3), x + u = (1.25, 2, 2.5), M(x + u) = (2.5, 2, 2.5), minus x: (1.5, 0, -0.5)
    np.testing.assert_allclose(compose_with_prealign(u, scale)[:, 1, 2, 3], [1.5, 0.0, -0.5])
    assert compose_with_prealign(u, None) is u


def test_estimate_affine_recovers_a_known_placement_and_is_deterministic():
    fixed = _phantom()
    truth = _rotation(8.0, (1.5, -2.0, 1.0))
    moving = apply_affine(fixed, np.linalg.inv(truth), 1)  # moving(M x) = fixed(x)
    found = estimate_affine(fixed, moving, (2.0, 2.0, 2.0))
    np.testing.assert_array_equal(found, estimate_affine(fixed, moving, (2.0, 2.0, 2.0)))
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float64) for n in SHAPE), indexing="ij")).reshape(3, -1)
    inside = fixed.reshape(-1) > 0
    where = lambda m: (m[:3, :3] @ grid[:, inside]) + m[:3, 3, None]  # noqa: E731
    error = np.sqrt(((where(found) - where(truth)) ** 2).sum(axis=0))
    before = np.sqrt(((grid[:, inside] - where(truth)) ** 2).sum(axis=0))
    assert before.mean() > 2.0  # the placement is worth undoing
    assert error.mean() < 0.5, f"mean point error {error.mean():.3f} voxels"


def test_simulate_prealign_composes_outputs_and_reports_it(tmp_path, small_net, capsys):
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    fixed = _phantom()
    truth = _rotation(8.0, (1.5, -2.0, 1.0))
    moving = apply_affine(fixed, np.linalg.inv(truth), 1)
    labels = {"fixed_labels": (fixed > 0.6).astype(np.int16),
              "moving_labels": apply_affine((fixed > 0.6).astype(np.int16), np.linalg.inv(truth), 0)}
    paths = {}
    for name, data in {"fixed": 300 * fixed, "moving": 300 * moving, **labels}.items():
        paths[name] = str(tmp_path / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(data), affine), paths[name])

    def run(out: str, *extra: str) -> dict:
        argv = [str(small_net), "--fixed", paths["fixed"], "--moving", paths["moving"], "--fixed-labels",
                paths["fixed_labels"], "--moving-labels", paths["moving_labels"], "-o", str(tmp_path / out),
                "--engine", "reference", *extra]
        assert simulate_cli.main(argv) == 0
        return json.loads((tmp_path / out / "report.json").read_text())

    plain, aligned = run("plain"), run("aligned", "--prealign", "affine")
    assert "pre-aligned by an affine" in capsys.readouterr().out
    assert plain["grid"]["prealign"] is None and "SimpleITK" in aligned["grid"]["prealign"]["method"]
    assert aligned["dice"]["mean_after"] > plain["dice"]["mean_after"] + 0.1
    field = np.asarray(nib.load(str(tmp_path / "aligned" / "displacement.nii.gz")).dataobj)[:, :, :, 0, :]
    assert np.abs(field).max() > 2.0  # mm: the composed field carries the placement, not just the network's part


def test_prealign_belongs_to_file_pairs(small_net, tmp_path, capsys):
    assert simulate_cli.main([str(small_net), "--prealign", "affine", "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--prealign" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_a_failed_affine_stage_is_one_line_naming_the_moving_file(tmp_path, small_net, capsys):
    fixed, moving = np.zeros((16, 16, 16), np.float32), np.zeros((16, 16, 16), np.float32)
    fixed[2, 2, 2], moving[13, 13, 13] = 1.0, 1.0  # nothing overlaps: mutual information has no samples
    for name, data in (("fixed", fixed), ("moving", moving)):
        nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / f"{name}.nii.gz"))
    code = simulate_cli.main([str(small_net), "--fixed", str(tmp_path / "fixed.nii.gz"), "--moving",
                              str(tmp_path / "moving.nii.gz"), "--prealign", "affine", "-o", str(tmp_path / "o"),
                              "--engine", "reference"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "moving.nii.gz" in err and "--prealign affine failed" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
