"""Batch-norm running statistics as training leaves them, for squeeze-and-excitation networks in numeric checks.

Under random BN statistics those networks are chaotic in float32 (one torch model's float32 and float64 logits
differ by 4e-4 for efficientnet_b0 at 64 px, 0.2 for b1 at 97 px): no two frameworks can agree to a tolerance.
Measured statistics of a random batch, each mean then moved by N(0, 0.05) standard deviations and each variance
scaled by U(0.9, 1.1), stay random (a mapping that mixes them up shows) without being chaotic (wider
perturbations compound over ~50 BNs: U(0.75, 1.25) gives float32 vs float64 1.5e-5 on efficientnet_b0).
"""

from __future__ import annotations


def measured_bn_stats(net, input_chw: tuple[int, int, int], seed: int):
    """Set every BatchNorm2d of the torch module ``net`` so (with a random ``num_batches_tracked``); returns it."""
    import torch

    g = torch.Generator().manual_seed(seed)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: this batch's statistics
    net.eval()
    for m in bns:
        m.train()  # only the BNs: stochastic depth and dropout stay the identity, as in the checked eval run
    with torch.no_grad():
        net(torch.randn(8, *input_chw, generator=g))
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
            m.running_mean.add_(torch.randn(m.running_mean.shape, generator=g) * 0.05 * m.running_var.sqrt())
            m.running_var.mul_(torch.rand(m.running_var.shape, generator=g) * 0.2 + 0.9)
            m.num_batches_tracked.fill_(int(torch.randint(1, 10_000, (), generator=g)))
    return net.eval()
