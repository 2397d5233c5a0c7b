"""The Keras 3 backend."""

from .. import register
from .emitter import KerasEmitter

register("keras", KerasEmitter)
