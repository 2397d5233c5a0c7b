"""A convolutional autoencoder: strided-convolution encoder, transposed-convolution decoder.

The idea (an autoencoder whose encoder and decoder are convolutional, trained to reconstruct its input) is
Masci, Meier, Ciresan, Schmidhuber, "Stacked Convolutional Auto-Encoders for Hierarchical Feature Extraction",
ICANN 2011. No paper has a canonical layer table for the modern form (strided convs down, transposed convs up,
no pooling); the layers here are those of the widely copied MNIST example of Patrick Loeber ("Autoencoder in
PyTorch - Theory & Implementation", 2021; github.com/patrickloeber/pytorch-examples, Autoencoder.ipynb,
class Autoencoder):

    encoder  N x 1 x 28 x 28
             Conv2d(1, 16, 3, stride 2, padding 1), ReLU      -> 16 x 14 x 14
             Conv2d(16, 32, 3, stride 2, padding 1), ReLU     -> 32 x 7 x 7
             Conv2d(32, 64, 7)                                -> 64 x 1 x 1   (the code; no activation)
    decoder  ConvTranspose2d(64, 32, 7), ReLU                 -> 32 x 7 x 7
             ConvTranspose2d(32, 16, 3, stride 2, padding 1, output_padding 1), ReLU   -> 16 x 14 x 14
             ConvTranspose2d(16, 1, 3, stride 2, padding 1, output_padding 1), Sigmoid -> 1 x 28 x 28

(transposed sizes: (in - 1) * stride - 2 * padding + kernel + output_padding: (1 - 1) + 7 = 7,
(7 - 1) * 2 - 2 + 3 + 1 = 14, (14 - 1) * 2 - 2 + 3 + 1 = 28). Every layer has a bias; no BN. The input is
28 x 28 (the 7x7 code conv needs the 7x7 map); ``channels`` is the image's channel count (1 for MNIST, 3 for
the notebook's CIFAR variant).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvAutoencoder(nn.Module):
    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 7),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 7),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(16, channels, 3, stride=2, padding=1, output_padding=1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
