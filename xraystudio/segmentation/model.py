"""The segmentation network: a small U-Net, plain torch, described by a JSON-able config.

A U-Net is enough for five large, well-placed structures, and a plain ``nn.Module`` (rather than
a library block) keeps the weights file a flat safetensors dict that loads without any code from
outside this package. Widths are small because inference must stay well under a second on a
2-core CPU; the config travels with the weights so that a shipped model rebuilds itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet`; ``channels[i]`` is the width at 1/2**i resolution."""

    in_channels: int = 1
    out_channels: int = 5
    channels: tuple[int, ...] = (16, 32, 64, 128, 192)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        return cls(
            in_channels=int(data["in_channels"]),
            out_channels=int(data["out_channels"]),
            channels=tuple(int(c) for c in data["channels"]),
        )

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this (one halving per level below the top)."""
        return 2 ** (len(self.channels) - 1)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Encoder-decoder with skip connections; returns one logit map per output channel.

    Channels are independent sigmoids, not a softmax, because the structures overlap
    (clavicles over the lungs, heart over the left lung's border).
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        self.down = nn.ModuleList(
            [_block(config.in_channels, ch[0])] + [_block(a, b) for a, b in zip(ch, ch[1:])]
        )
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(ch, ch[1:])]
        )
        self.merge = nn.ModuleList([_block(2 * a, a) for a in ch[:-1]])
        self.head = nn.Conv2d(ch[0], config.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for i in reversed(range(len(self.up))):
            x = self.merge[i](torch.cat([skips[i], self.up[i](x)], dim=1))
        return self.head(x)
