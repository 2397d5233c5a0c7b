"""Importing torchvision in the test environment (CI and this machine).

TEST-ENVIRONMENT WORKAROUND, not product code: the torchvision==0.28.0 wheel that pairs with torch 2.13
(installed with ``pip install --no-deps torchvision==0.28.0 pillow``) has its compiled ops (``_C.so``: nms,
roi_align, ...) built for CUDA; they do not load on the CPU build of torch, and then ``import torchvision``
fails with ``operator torchvision::nms does not exist`` (its module level registers fake kernels for
``torchvision::nms`` / ``qnms`` unconditionally). The classification models archc is compared with need none
of those ops, so when the compiled ops do not load we define the two operator *schemas* (no kernels) with
``torch.library`` before the import. Where the ops do load (a matching wheel), nothing is defined.
"""

from __future__ import annotations

import glob
import importlib.util
import os

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBRARY = None  # kept alive: a torch.library.Library removes its definitions when collected


def import_torchvision():
    """``torchvision``, importable on CPU torch; None if it is not installed."""
    global _LIBRARY
    found = importlib.util.find_spec("torchvision")
    if found is None or not found.submodule_search_locations:
        return None
    import torch

    if _LIBRARY is None and not _ops_load(torch, found.submodule_search_locations[0]):
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _SCHEMAS:
            lib.define(schema)
        _LIBRARY = lib
    import torchvision

    return torchvision


def _ops_load(torch, folder: str) -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018  (already registered: by an earlier import or by us)
        return True
    except (AttributeError, RuntimeError):
        pass
    for so in glob.glob(os.path.join(folder, "_C*.so")) + glob.glob(os.path.join(folder, "_C*.pyd")):
        try:
            torch.ops.load_library(so)
            return True
        except OSError:
            return False
    return False
