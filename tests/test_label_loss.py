"""The label term of the training loss (`label_weight`, SynthMorph's soft Dice of warped label maps)."""
from __future__ import annotations

import pytest
import torch

from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.training.losses import registration_loss, soft_label_dice
from spikereg_deploy.training.train import TrainConfig, pair_batches


def _maps() -> tuple[torch.Tensor, torch.Tensor]:
    """Two labels in a 7 x 6 column; the moving map holds them 2 voxels further along axis 0."""
    fixed = torch.zeros((1, 1, 16, 12, 12), dtype=torch.int64)
    moving = torch.zeros_like(fixed)
    fixed[0, 0, 3:8, 2:9, 4:10], fixed[0, 0, 8:10, 2:9, 4:10] = 1, 2
    moving[0, 0, 5:10, 2:9, 4:10], moving[0, 0, 10:12, 2:9, 4:10] = 1, 2
    return fixed, moving


def test_soft_dice_is_one_for_the_true_field_and_a_hand_count_without_it():
    fixed, moving = _maps()
    true_field = torch.zeros((1, 3, 16, 12, 12))
    true_field[:, 0] = 2.0  # warped(x) = moving(x + 2 e0) = fixed(x)
    assert float(soft_label_dice(fixed, moving, true_field)) == pytest.approx(1.0, abs=1e-6)
    # zero field: label 1 overlaps on 3 of 5 slices (0.6), label 2 on none (0), background 1926 of 2010 voxels
    by_hand = (0.6 + 0.0 + 1926 / 2010) / 3
    assert float(soft_label_dice(fixed, moving, torch.zeros_like(true_field))) == pytest.approx(by_hand, abs=1e-6)


def test_label_term_pulls_the_field_towards_the_labels():
    fixed, moving = _maps()
    disp = torch.zeros((1, 3, 16, 12, 12), requires_grad=True)
    image = torch.zeros((1, 1, 16, 12, 12))
    loss, parts = registration_loss(image, image, disp, 0.0, labels=(fixed, moving), label_weight=1.0)
    loss.backward()
    assert "label_dice" in parts and float(disp.grad[:, 0].sum()) < 0  # descent raises u_0 towards +2
    plain, parts = registration_loss(image, image, disp.detach(), 0.0, labels=(fixed, moving), label_weight=0.0)
    assert "label_dice" not in parts


def test_label_weight_batches_carry_labels_and_bad_settings_are_refused():
    cfg = TrainConfig(shape=(16, 16, 16), data_source="synth", spacing=2.0, batch_size=1, label_weight=1.0)
    fixed, moving, fixed_labels, moving_labels = next(pair_batches(cfg, 0))
    assert fixed_labels.shape == fixed.shape and fixed_labels.dtype == torch.int64
    assert moving_labels.shape == moving.shape
    from spikereg_deploy.training.ann import AnnUNet
    from spikereg_deploy.training.train import training_step
    from spikereg_deploy.unet import UNetConfig

    torch.manual_seed(0)
    ann = AnnUNet(UNetConfig(encoder=(4, 8, 8), decoder=(8, 4, 4)))
    optimizer = torch.optim.Adam(ann.parameters(), lr=1e-3)
    _, parts = training_step(ann, optimizer, fixed, moving, cfg, labels=(fixed_labels, moving_labels))
    assert 0 < parts["label_dice"] <= 1
    with pytest.raises(SpikeRegError, match="label_weight"):
        TrainConfig(label_weight=-1.0).validate()
