"""archc: a compiler for CNN architectures written in YAML."""

__version__ = "0.1.0"
