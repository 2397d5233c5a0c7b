"""The DCGAN generator of Radford et al. 2016, written from the paper.

Paper: Alec Radford, Luke Metz, Soumith Chintala, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", ICLR 2016, arXiv:1511.06434. Figure 1 (the LSUN generator):

    z (100)  -- project and reshape -->  4 x 4 x 1024
    CONV 1 (fractionally-strided, 5x5 in the figure, stride 2)  ->  8 x 8 x 512
    CONV 2                                                      -> 16 x 16 x 256
    CONV 3                                                      -> 32 x 32 x 128
    CONV 4                                                      -> 64 x 64 x 3, tanh

Section 3 ("architecture guidelines"): batch norm in the generator (not on its output layer), ReLU in every
layer but the output, which uses tanh; no fully connected hidden layers.

The layers are those of the PyTorch DCGAN example (pytorch/examples, dcgan/main.py, class Generator), the form
everyone uses: the projection of z is a 4x4 ConvTranspose2d from a 1x1 map (stride 1, padding 0: exactly a
linear layer without bias to 4 x 4 x (8 ngf)), and every up-step is a 4x4 ConvTranspose2d, stride 2, padding 1
(out = (in - 1) * 2 - 2 + 4 = 2 in), all without bias (BN follows). ``ngf`` sets the widths: 8 ngf, 4 ngf,
2 ngf, ngf, then ``nc``. ``ngf=128`` gives Figure 1's 1024, 512, 256, 128; the example's default is 64.
Deviation from Figure 1 kept from the example: 4x4 kernels (the figure draws 5x5; a 5x5 stride-2 transposed conv
needs output_padding 1 to double the size).
"""

from __future__ import annotations

import torch
from torch import nn


def _up(cin: int, cout: int, stride: int, padding: int) -> list[nn.Module]:
    return [
        nn.ConvTranspose2d(cin, cout, 4, stride, padding, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class DCGANGenerator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.main = nn.Sequential(
            *_up(nz, ngf * 8, 1, 0),  # 1x1 -> 4x4
            *_up(ngf * 8, ngf * 4, 2, 1),  # -> 8x8
            *_up(ngf * 4, ngf * 2, 2, 1),  # -> 16x16
            *_up(ngf * 2, ngf, 2, 1),  # -> 32x32
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),  # -> 64x64
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)
