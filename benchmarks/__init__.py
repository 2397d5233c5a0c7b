"""Benchmarks of archc's generated code against hand-written references, and of the compiler itself.

Run ``python -m benchmarks.run`` from the repository root (``--quick`` for a tiny smoke-size run).
"""
