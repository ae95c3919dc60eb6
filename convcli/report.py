"""The run report: what one kernel did to one input, as plain data.

Built by :mod:`convcli.pipeline`, rendered by the CLI (Rich table or JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .geometry import LayerGeometry

__all__ = ["KernelRun", "FileResult"]


@dataclass(frozen=True)
class KernelRun:
    """One kernel applied to one input and written to one output."""

    input: str
    input_mode: str
    input_shape: tuple[int, ...]
    input_bits: int | None
    kernel: str
    kernel_shape: tuple[int, int]
    kernel_scale: str
    kernel_offset: float
    border: str
    convolve: bool
    #: the engine's plan: path, reason, estimates
    engine: str
    geometry: LayerGeometry
    output: str
    output_shape: tuple[int, ...]
    output_bits: int | None
    map: str
    clipped: int
    values: int
    #: min, max and mean of the float feature map, over all channels
    minimum: float
    maximum: float
    mean: float
    notes: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)
    #: min, max and mean of the float feature map per filtered channel:
    #: ``{"channel": "R", "min": ..., "max": ..., "mean": ...}``
    channels: tuple[dict, ...] = ()
    #: the alpha policy applied: keep, filter, premultiply, or none (no alpha)
    alpha: str = "none"
    #: the frame of a multi-frame input, None for single images
    frame: str | None = None
    #: what was written: PNG, TIFF, JPEG, ..., NPY or NPZ
    output_format: str = ""

    def to_dict(self) -> dict:
        g = self.geometry
        return {
            "input": self.input,
            "input_mode": self.input_mode,
            "input_shape": list(self.input_shape),
            "input_bits": self.input_bits,
            "kernel": self.kernel,
            "kernel_shape": list(self.kernel_shape),
            "kernel_scale": self.kernel_scale,
            "kernel_offset": self.kernel_offset,
            "operation": "convolve" if self.convolve else "correlate",
            "stride": list(g.layer.stride),
            "padding": [list(g.padding[0]), list(g.padding[1])],
            "padding_rule": g.layer.padding.rule,
            "dilation": list(g.layer.dilation),
            "border": self.border,
            "engine": self.engine,
            "output": self.output,
            "output_shape": list(self.output_shape),
            "output_bits": self.output_bits,
            "receptive_field": list(g.receptive_field),
            "jump": list(g.jump),
            "macs": g.macs,
            "map": self.map,
            "clipped": self.clipped,
            "values": self.values,
            "min": self.minimum,
            "max": self.maximum,
            "mean": self.mean,
            "channels": [dict(c) for c in self.channels],
            "alpha": self.alpha,
            "frame": self.frame,
            "output_format": self.output_format,
            "notes": list(self.notes),
            "seconds": {k: round(v, 6) for k, v in self.seconds.items()},
        }


@dataclass(frozen=True)
class FileResult:
    """Everything done for one input file; ``error`` is set when it failed."""

    input: str
    runs: tuple[KernelRun, ...] = ()
    #: one message per failure (reading the input, or one kernel)
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def error(self) -> str | None:
        """The first failure, if any."""
        return self.errors[0] if self.errors else None

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "status": "ok" if self.ok else "failed",
            "error": self.error,
            "errors": list(self.errors),
            "runs": [r.to_dict() for r in self.runs],
        }
