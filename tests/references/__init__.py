"""Hand-written PyTorch reference modules for archc's non-classification zoo (issues 20 and 21).

Each module is written from its paper (or, where the architecture is a community standard rather than a paper's
table, from the source it is taken from), with plain ``torch`` only: no archc, no torchvision. They are the
independent side of the comparisons: the specs in ``drafts/specs/`` (later ``specs/``) must reproduce their
parameter counts, BN statistics, output shapes and, through ``convert-weights``, their outputs.

| module | what | input -> output |
| --- | --- | --- |
| ``m5.M5`` | Dai et al. 2017, M5 (Table 1) | (N, 1, 32000) -> (N, classes) |
| ``dcgan.DCGANGenerator`` | Radford et al. 2016, Figure 1 generator | (N, 100, 1, 1) -> (N, 3, 64, 64) |
| ``autoencoder.ConvAutoencoder`` | strided-conv encoder, transposed-conv decoder | (N, 1, 28, 28) -> (N, 1, 28, 28) |
| ``unet.UNet`` | Ronneberger et al. 2015, 'same' padding + BN | (N, C, H, W) -> (N, classes, H, W) |
"""
