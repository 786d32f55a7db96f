"""The ANN teacher: the spiking U-Net's macro-architecture with ReLU, so conversion is a layer-to-layer transfer.

No biases and no batch norm: the spiking network has neither (Loihi biases exist, but the SNN is trained without
them), so every teacher weight has exactly one place to go. The activation is ReLU, or QCFS (`qcfs.py`) for a
teacher whose activations take only the levels T spikes express; each QCFS layer's clip becomes its threshold.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from spikereg_deploy.network import NetworkSpec
from spikereg_deploy.unet import UNetConfig, build_unet_spec

from .qcfs import QcfsActivation


class AnnUNet(torch.nn.Module):
    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        self.spec: NetworkSpec = build_unet_spec(self.config)
        self.convs = torch.nn.ModuleDict()
        self.activations = torch.nn.ModuleDict()
        for layer in self.spec.layers[1:]:
            cin = self.spec.in_channels(layer.name)
            if layer.kind == "convT":
                conv: torch.nn.Module = torch.nn.ConvTranspose3d(cin, layer.out_channels, layer.kernel, layer.stride,
                                                                 layer.padding, layer.output_padding, bias=False)
            else:
                conv = torch.nn.Conv3d(cin, layer.out_channels, layer.kernel, layer.stride, layer.padding,
                                       bias=False)
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            if layer.kind == "readout":
                torch.nn.init.normal_(conv.weight, std=1e-3)  # start near the identity transform
            self.convs[layer.name] = conv
            if self.config.activation == "qcfs" and layer.kind != "readout":
                self.activations[layer.name] = QcfsActivation(self.config.activation_levels)

    def forward(self, image: torch.Tensor, return_activations: bool = False):
        """image (N, 2, D, H, W) in [0, 1] -> displacement (N, 3, D, H, W) in voxels."""
        self.spec.geometry(tuple(image.shape[2:]))
        acts: dict[str, torch.Tensor] = {self.spec.input_layer.name: image}
        disp = None
        for layer in self.spec.layers[1:]:
            x = torch.cat([acts[s] for s in layer.inputs], dim=1)
            y = self.convs[layer.name](x)
            if layer.kind == "readout":
                disp = y
            else:
                acts[layer.name] = self.activations[layer.name](y) if self.activations else F.relu(y)
        return (disp, acts) if return_activations else disp

    def clips(self) -> dict[str, float]:
        """Each layer's QCFS clip (its activation's ceiling); empty for a ReLU teacher."""
        return {name: act.clip for name, act in self.activations.items()}
