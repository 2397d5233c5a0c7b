"""The PyTorch backend."""

from .. import register
from .emitter import TorchEmitter

register("torch", TorchEmitter)
