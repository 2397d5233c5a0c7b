"""U-Net (Ronneberger et al. 2015) in the 'same'-padding, batch-normalized form people train today.

Paper: Olaf Ronneberger, Philipp Fischer, Thomas Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015, arXiv:1505.04597. Figure 1 and section 2: a contracting path of four steps, each two
3x3 convolutions with ReLU then a 2x2 max pool of stride 2, doubling the channels at each step (64, 128, 256,
512, then 1024 at the bottom); an expansive path of four steps, each a 2x2 "up-convolution" halving the
channels, a concatenation with the matching feature map of the contracting path, and two 3x3 convolutions with
ReLU; a final 1x1 convolution to the classes.

Deviations from the paper, those of the common variant (e.g. milesial/Pytorch-UNet's UNet(bilinear=False)):
  - the 3x3 convolutions are padded (padding 1), so no cropping is needed and the output has the input's size
    (the paper's are unpadded: 572 -> 388);
  - each 3x3 convolution is followed by BatchNorm2d (eps 1e-5, momentum 0.1) before its ReLU, and has no bias;
  - the up-convolution is ConvTranspose2d(c, c // 2, kernel 2, stride 2) with a bias; the skip is concatenated
    first: ``torch.cat([skip, up], dim=1)``;
  - the height and width must be divisible by 16 (four 2x2 pools), so the up-sampled map always matches its skip
    (milesial's version pads the up-sampled map when they differ; here a mismatch is an error).
``width`` is the first level's width (64 in the paper), ``classes`` the output channels (2 in the paper),
``channels`` the input's (1 in the paper). The attribute names (inc, down1-4 with pool and conv, up1-4 with up and
conv, each double conv's conv1 / bn1 / conv2 / bn2, outc) are those drafts/specs/unet.yaml gives its items, so a
state_dict of one loads into the other by name.
"""

from __future__ import annotations

import torch
from torch import nn


class DoubleConv(nn.Module):
    """(3x3 conv, padding 1, no bias - BN - ReLU) twice."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(x)))


class Down(nn.Module):
    """2x2 max pool, stride 2, then a double conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


class Up(nn.Module):
    """2x2 transposed conv (stride 2) halving the channels, concatenation after the skip, double conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if x.shape[2:] != skip.shape[2:]:
            raise ValueError(f"U-Net: height and width must be divisible by 16 (skip {tuple(skip.shape[2:])})")
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    def __init__(self, channels: int = 3, classes: int = 2, width: int = 64) -> None:
        super().__init__()
        w = width
        self.inc = DoubleConv(channels, w)
        self.down1 = Down(w, 2 * w)
        self.down2 = Down(2 * w, 4 * w)
        self.down3 = Down(4 * w, 8 * w)
        self.down4 = Down(8 * w, 16 * w)
        self.up1 = Up(16 * w, 8 * w)
        self.up2 = Up(8 * w, 4 * w)
        self.up3 = Up(4 * w, 2 * w)
        self.up4 = Up(2 * w, w)
        self.outc = nn.Conv2d(w, classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)
