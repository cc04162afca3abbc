"""The paper's 'Conv model': five conv blocks, then a 512-d fully connected embedding, then the classifier."""

from __future__ import annotations

import torch
from torch import nn

from ganfp.models.backbone import Backbone


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),  # images as small as 16px still pass five blocks
    )


class Conv5(Backbone):
    name = "conv5"
    head_prefixes = ("head",)
    first_conv = "features.0.0"

    def __init__(self, num_classes: int = 2, in_chans: int = 1, image_size: int = 224, width: int = 32, drop_rate: float = 0.0):
        super().__init__()
        widths = [width * 2**i for i in range(5)]  # 32, 64, 128, 256, 512
        blocks, c_in = [], in_chans
        for w in widths:
            blocks.append(conv_block(c_in, w))
            c_in = w
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c_in, 512), nn.ReLU(inplace=True), nn.Dropout(drop_rate))
        self.num_features = 512
        self.image_size = image_size
        self.num_classes = num_classes
        self.head = nn.Linear(512, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def reset_head(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes).to(self.fc[1].weight.device)
        self.num_classes = num_classes
