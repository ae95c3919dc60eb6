"""convcli: 2-D convolution for images and arrays, from the command line or from Python.

The public API is importable from here; heavy modules (NumPy, Pillow) load only
when one of their names is first used, so ``convcli --help`` stays quick.

>>> import convcli
>>> convcli.conv_geometry(224, 7, stride=2, padding=3).output
(112, 112)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "correlate": "convcli.engine",
    "convolve": "convcli.engine",
    "correlate1d": "convcli.engine",
    "convolve1d": "convcli.engine",
    "Border": "convcli.engine",
    "plan": "convcli.engine",
    "conv2d": "convcli.engine",
    "conv2d_geometry": "convcli.engine",
    "load_weights": "convcli.weights",
    "Bank": "convcli.banks",
    "apply_bank": "convcli.banks",
    "resolve_spec": "convcli.kernels",
    "network_geometry": "convcli.geometry",
    "NetworkGeometry": "convcli.geometry",
    "Kernel": "convcli.kernels",
    "builtin_registry": "convcli.kernels",
    "resolve_kernel": "convcli.kernels",
    "parse_matrix": "convcli.kernels",
    "conv_geometry": "convcli.geometry",
    "stack_geometry": "convcli.geometry",
    "ConvLayer": "convcli.geometry",
    "PaddingSpec": "convcli.geometry",
    "map_values": "convcli.output",
    "read_input": "convcli.images",
    "ConvcliError": "convcli.errors",
    "ExitCode": "convcli.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'convcli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
