"""M5, the 5-weight-layer raw-waveform CNN of Dai et al. 2017, written from the paper.

Paper: Wei Dai, Chia Dai, Shuhui Qu, Juncheng Li, Samarjit Das, "Very Deep Convolutional Neural Networks for Raw
Waveforms", ICASSP 2017, arXiv:1610.00087. Table 1, column "M5 (0.5M)":

    input 32000 x 1 (2 s of audio at 8 kHz)
    [80/4, 128]        conv, kernel 80, stride 4, 128 filters      -> 8000 x 128
    maxpool 4 x 1                                                  -> 2000 x 128
    [3, 128]           conv, kernel 3                             -> 2000 x 128
    maxpool 4 x 1                                                  ->  500 x 128
    [3, 256]                                                       ->  500 x 256
    maxpool 4 x 1                                                  ->  125 x 256
    [3, 512]                                                       ->  125 x 512
    maxpool 4 x 1                                                  ->   32 x 512
    global average pooling                                         ->    1 x 512
    softmax            (a linear layer to the classes; this module returns its logits)

Section 2 of the paper: batch normalization after every convolution, before the ReLU; no fully connected layer
but the output layer; no dropout. This module follows Table 1's widths (128, 128, 256, 512), not the narrower
"M5" of the torchaudio speech-commands tutorial (32/64 channels, first stride 16).

Choices the paper leaves open, made here and to be written the same way in the spec:
  - padding: the table's lengths keep the length through every conv up to the stride (8000 = 32000 / 4,
    then 2000 through the kernel-3 conv), i.e. TensorFlow's 'same'. For the 80/4 conv that is
    (ceil(L/4) - 1) * 4 + 80 - L = 76 zeros, 38 on each side, at every L divisible by 4 (32000 included), so it is
    written as ``padding=38``; the kernel-3 convs get ``padding=1``.
  - the convolutions have no bias: BN follows each of them and cancels it (the paper does not say);
  - BN is PyTorch's default (eps 1e-5, momentum 0.1);
  - Table 1's last length, 32 from 125, is a pool that keeps the partial last window: ``ceil_mode=True`` (the
    32nd window holds the 125th step alone; the other pools divide exactly at 32000 samples). A pool that drops
    it would give 31. (arrrrrmin/esc-learner's PyTorch M5 reads the table the same way: ceil_mode on the last
    pool, then an average over 32.)
Written without the PDF at hand: Table 1 as quoted above was checked against independent implementations
(widths, kernels, strides and pools agree in all; the 8000 / 32 lengths with arrrrrmin/esc-learner's), not against
the table itself; a reviewer with the paper should confirm the last pool's 32.
"""

from __future__ import annotations

import torch
from torch import nn

WIDTHS = (128, 128, 256, 512)  # Table 1, M5


class M5(nn.Module):
    def __init__(self, classes: int = 10, channels: int = 1, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.conv1 = nn.Conv1d(channels, w1, kernel_size=80, stride=4, padding=38, bias=False)
        self.bn1 = nn.BatchNorm1d(w1)
        self.pool1 = nn.MaxPool1d(4)
        self.conv2 = nn.Conv1d(w1, w2, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(w2)
        self.pool2 = nn.MaxPool1d(4)
        self.conv3 = nn.Conv1d(w2, w3, kernel_size=3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm1d(w3)
        self.pool3 = nn.MaxPool1d(4)
        self.conv4 = nn.Conv1d(w3, w4, kernel_size=3, padding=1, bias=False)
        self.bn4 = nn.BatchNorm1d(w4)
        self.pool4 = nn.MaxPool1d(4, ceil_mode=True)
        self.fc = nn.Linear(w4, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool2(torch.relu(self.bn2(self.conv2(x))))
        x = self.pool3(torch.relu(self.bn3(self.conv3(x))))
        return self.pool4(torch.relu(self.bn4(self.conv4(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # N x 512 x L'
        x = x.mean(dim=2)  # global average pool over time
        return self.fc(x)
