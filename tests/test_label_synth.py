"""SynthMorph-style training pairs from label maps: deterministic per (seed, index), one contrast per pair, two
independent smooth warps, the offline atlases on the 2 mm grid, and the training config that uses them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spikereg_deploy.cli import train_cli
from spikereg_deploy.errors import DataError, SpikeRegError
from spikereg_deploy.imaging.label_maps import CAT12_ATLASES, CAT12_TISSUE, label_map, training_grid
from spikereg_deploy.imaging.label_synth import LabelSynthConfig, label_synth_pair, random_label_map
from spikereg_deploy.training.train_config import TrainConfig

RANDOM_ONLY = LabelSynthConfig(random_fraction=1.0)
ATLAS_ONLY = LabelSynthConfig(random_fraction=0.0, image_fraction=0.0)


def test_pairs_are_deterministic_per_seed_and_index() -> None:
    a, b = label_synth_pair(3, (16, 16, 16), seed=5), label_synth_pair(3, (16, 16, 16), seed=5)
    for name in ("fixed", "moving", "fixed_labels", "moving_labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.name == b.name
    c = label_synth_pair(4, (16, 16, 16), seed=5)
    assert not np.array_equal(a.fixed, c.fixed)
    assert not np.array_equal(a.fixed, label_synth_pair(3, (16, 16, 16), seed=6).fixed)


@pytest.mark.parametrize("config", [RANDOM_ONLY, ATLAS_ONLY], ids=["random-maps", "atlases"])
def test_a_pair_is_one_map_under_two_warps_with_one_contrast(config: LabelSynthConfig) -> None:
    for index in range(4):
        pair = label_synth_pair(index, (24, 20, 16), seed=1, config=config)
        assert pair.fixed.shape == pair.moving.shape == pair.fixed_labels.shape == (24, 20, 16)
        assert pair.fixed.dtype == np.float32 and 0 <= pair.fixed.min() and pair.fixed.max() <= 1
        assert pair.fixed_labels.dtype == np.int16
        changed = float((pair.fixed_labels != pair.moving_labels).mean())
        assert 0 < changed < 0.6, changed  # two different smooth warps of the same labels
        shared = [lab for lab in np.unique(pair.fixed_labels) if (pair.fixed_labels == lab).sum() > 30
                  and (pair.moving_labels == lab).sum() > 30]
        if len(shared) >= 4:  # one contrast per pair: each label is about as bright on both sides
            f = [pair.fixed[pair.fixed_labels == lab].mean() for lab in shared]
            m = [pair.moving[pair.moving_labels == lab].mean() for lab in shared]
            assert np.corrcoef(f, m)[0, 1] > 0.8, pair.name
        kind = pair.name.split(":")[1]
        assert (kind == "random") == (config is RANDOM_ONLY)


def test_random_label_maps_have_the_labels_asked_for() -> None:
    labels = random_label_map((32, 32, 32), np.random.default_rng(0), 12, 4.0)
    assert labels.dtype == np.int16 and labels.max() <= 11 and len(np.unique(labels)) >= 10
    # smoothed noise makes blobs, not salt and pepper: most neighbours share a label
    assert (labels[1:] == labels[:-1]).mean() > 0.8


def test_offline_atlases_on_the_2mm_grid() -> None:
    shape, affine = training_grid(2.0)
    assert shape == (98, 116, 94) and affine[0, 0] == 2.0 and tuple(affine[:3, 3]) == (-98.0, -134.0, -72.0)
    neuro = label_map("neuromorphometrics", 2.0)
    assert neuro.labels.shape == shape and neuro.image is None and neuro.num_labels > 100
    assert sorted(np.unique(neuro.labels))[:3] == [0, 1, 2]  # renumbered consecutively
    tissue = label_map(CAT12_TISSUE, 2.0)
    assert set(np.unique(tissue.labels)) == {0, 1, 2, 3} and tissue.image is not None
    assert tissue.image.min() == 0 and tissue.image.max() == 1 and (tissue.image[tissue.labels == 0] == 0).all()
    assert set(CAT12_ATLASES) <= set(LabelSynthConfig().maps)
    with pytest.raises(DataError, match="unknown label map 'harvard'"):
        label_map("harvard")


def test_atlas_patches_hold_brain_and_real_t1_pairs_exist() -> None:
    cfg = LabelSynthConfig(random_fraction=0.0, image_fraction=1.0, maps=(CAT12_TISSUE,))
    pair = label_synth_pair(0, (24, 24, 24), seed=2, config=cfg)
    assert pair.name.endswith(":cat12-tissue-t1") and (pair.fixed_labels > 0).mean() > 0.1


@pytest.mark.parametrize(("changes", "message"), [
    (dict(random_fraction=1.5), "must be in"), (dict(maps=("nope",)), "unknown label map 'nope'"),
    (dict(random_labels=(1, 4)), "random_labels"), (dict(maps=(), random_fraction=0.5), "no label maps"),
])
def test_bad_synthesis_settings(changes, message) -> None:
    with pytest.raises(DataError, match=message):
        label_synth_pair(0, (16, 16, 16), config=LabelSynthConfig(**changes))


def _config(tmp_path: Path, data: str) -> Path:
    path = tmp_path / "synth.toml"
    path.write_text("stage = 'ann'\nshape = [16, 16, 16]\n[model]\nencoder = [4, 8, 8]\ndecoder = [8, 4, 4]\n"
                    f"time_steps = 3\n[optim]\nsteps = 2\nbatch_size = 1\ncheckpoint_every = 1\n[data]\n{data}\n")
    return path


def test_training_on_synthesised_patches_resumes_the_same_stream(tmp_path: Path, capsys) -> None:
    config = _config(tmp_path, 'data_source = "synth"\nspacing = 2.0\nlabel_maps = ["lpba40", "cat12-tissue"]')
    cfg = TrainConfig.from_toml(config)
    assert cfg.synth_config().maps == ("lpba40", "cat12-tissue")
    ckpt = tmp_path / "a.pt"
    assert train_cli.main(["--config", str(config), "-o", str(ckpt)]) == 0
    other = _config(tmp_path, 'data_source = "embedded"')
    code = train_cli.main(["--config", str(other), "--steps", "3", "-o", str(ckpt)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "data_source = 'synth'" in err[-1] and "--fresh" in err[-1]


@pytest.mark.parametrize(("data", "message"), [
    ('data_source = "oasis"', "key 'data_source' in \\[data\\] must be one of 'embedded', 'synth'"),
    ('label_maps = ["nope"]', "key 'label_maps' in \\[data\\] must be a list of label maps"),
    ("random_fraction = 2", "key 'random_fraction' in \\[data\\] must be a number"),
])
def test_bad_data_keys_are_one_line(tmp_path: Path, data: str, message: str) -> None:
    with pytest.raises(SpikeRegError, match=message) as err:
        TrainConfig.from_toml(_config(tmp_path, data))
    assert str(tmp_path) in str(err.value)


def test_affine_placement_moves_the_pair_further_apart() -> None:
    """Each side's random affine (rotation, shift, scaling) comes on top of the smooth warp: more labels change,
    the pair is still deterministic, and the patch margin covers the affine's reach."""
    plain = LabelSynthConfig(random_fraction=1.0)
    placed = LabelSynthConfig(random_fraction=1.0, max_rotation_deg=6, max_shift_mm=6, max_scaling=0.04)
    assert placed.affine_reach(np.array([16, 16, 16])) > 3
    changed = [[float((p.fixed_labels != p.moving_labels).mean()) for p in
                (label_synth_pair(i, (16, 16, 16), seed=4, config=c) for i in range(6))] for c in (plain, placed)]
    assert np.mean(changed[1]) > np.mean(changed[0])
    a, b = (label_synth_pair(2, (16, 16, 16), seed=4, config=placed) for _ in range(2))
    np.testing.assert_array_equal(a.moving, b.moving)
    with pytest.raises(DataError, match="max_rotation_deg"):
        label_synth_pair(0, (16, 16, 16), config=LabelSynthConfig(max_rotation_deg=90))


def test_a_checkpoint_without_newer_data_keys_resumes_with_their_defaults(tmp_path: Path) -> None:
    """A run saved before a [data] key existed ran with that key's default: resuming it is the same stream."""
    from spikereg_deploy.training.train import _check_same_run, data_settings

    cfg = TrainConfig.from_toml(_config(tmp_path, 'data_source = "synth"'))
    stored = {k: v for k, v in data_settings(cfg).items() if k != "max_rotation_deg"}
    payload = {"kind": "ann", "config": cfg.model, "training_state": {"data": stored}}
    _check_same_run(payload, cfg, tmp_path / "a.pt")
    cfg.max_rotation_deg = 5.0
    with pytest.raises(SpikeRegError, match="max_rotation_deg = 0.0"):
        _check_same_run(payload, cfg, tmp_path / "a.pt")
