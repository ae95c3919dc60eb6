"""The run report: what one kernel (or one layer) did to one input, as plain data.

Built by :mod:`convcli.pipeline` (kernels) and :mod:`convcli.layer` (layers), rendered by the
CLI (text or JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .geometry import LayerGeometry

__all__ = ["KernelRun", "FileResult", "LayerRun", "MapStats"]


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
    runs: tuple[KernelRun | LayerRun, ...] = ()
    #: one message per failure (reading the input, or one kernel)
    errors: tuple[str, ...] = ()
    #: outputs left alone because they existed (``--skip-existing``)
    skipped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def status(self) -> str:
        """failed (any error), skipped (nothing to do: every output existed) or ok."""
        if self.errors:
            return "failed"
        return "skipped" if self.skipped and not self.runs else "ok"

    @property
    def error(self) -> str | None:
        """The first failure, if any."""
        return self.errors[0] if self.errors else None

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "status": self.status,
            "error": self.error,
            "errors": list(self.errors),
            "skipped": list(self.skipped),
            "runs": [r.to_dict() for r in self.runs],
        }

    @property
    def outputs(self) -> list[str]:
        """Every file written for this input, in order, each once."""
        found: list[str] = []
        for r in self.runs:
            names = [r.output] if isinstance(r, KernelRun) else list(r.outputs.values())
            found.extend(n for n in names if n not in found)
        return found

    def manifest_record(self) -> dict:
        """One line of ``--manifest``: what a script needs to know about this input."""
        kernel_runs = [r for r in self.runs if isinstance(r, KernelRun)]
        return {
            "input": self.input,
            "status": self.status,
            "outputs": self.outputs,
            "input_shape": list(self.runs[0].input_shape) if self.runs else None,
            "output_shapes": [list(r.output_shape) for r in self.runs],
            "min": min((r.minimum for r in self.runs), default=None),
            "max": max((r.maximum for r in self.runs), default=None),
            "clipped": sum(r.clipped for r in kernel_runs),
            "seconds": round(sum(sum(r.seconds.values()) for r in self.runs), 6),
            "error": self.error,
            "errors": list(self.errors),
            "skipped": list(self.skipped),
        }


@dataclass(frozen=True)
class MapStats:
    """Summary of one feature map (one output channel)."""

    minimum: float
    maximum: float
    mean: float
    std: float

    def to_dict(self) -> dict:
        return {"min": self.minimum, "max": self.maximum, "mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class LayerRun:
    """A convolution layer (``--weights``) applied to one input, and what was written."""

    input: str
    input_mode: str
    input_shape: tuple[int, ...]
    input_bits: int | None
    #: where the weights and the bias came from, as given (``model.npz:conv1.weight``)
    weights: str
    #: (C_out, C_in/groups, kh, kw) after the layout was applied, and as stored in the file
    weight_shape: tuple[int, int, int, int]
    stored_shape: tuple[int, ...]
    layout: str
    bias: str | None
    convolve: bool
    #: the input normalisation, ``{"scale": "1/255", "mean": [...], "std": [...]}``, or None
    normalisation: dict | None
    border: str
    #: the engine's plan for the layer: path, reason, tiling
    engine: str
    geometry: LayerGeometry
    #: what was written: ``{"maps": path, "grid": path, "filters": path}`` (those asked for)
    outputs: dict[str, str]
    output_shape: tuple[int, int, int]
    minimum: float
    maximum: float
    mean: float
    maps: tuple[MapStats, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def inputs_per_value(self) -> int:
        """Input values one output value is a weighted sum of: ``kh * kw * C_in/groups``."""
        _, cig, kh, kw = self.weight_shape
        return kh * kw * cig

    @property
    def params_formula(self) -> str:
        """``kh x kw x C_in/groups x C_out (+ C_out) = params``, as the seeds write it."""
        c_out, cig, kh, kw = self.weight_shape
        bias = f" + {c_out}" if self.geometry.layer.bias else ""
        return f"{kh}x{kw}x{cig}x{c_out}{bias} = {self.geometry.params:,}"

    def to_dict(self) -> dict:
        g = self.geometry
        (r0, r1), (c0, c1) = g.input_region(0, 0)
        return {
            "input": self.input,
            "input_mode": self.input_mode,
            "input_shape": list(self.input_shape),
            "input_bits": self.input_bits,
            "weights": self.weights,
            "weight_shape": list(self.weight_shape),
            "stored_shape": list(self.stored_shape),
            "layout": self.layout,
            "bias": self.bias,
            "groups": g.layer.groups,
            "channels_in": g.channels_in,
            "channels_out": g.channels_out,
            "operation": "convolve" if self.convolve else "correlate",
            "normalisation": self.normalisation,
            "stride": list(g.layer.stride),
            "padding": [list(g.padding[0]), list(g.padding[1])],
            "padding_rule": g.layer.padding.rule,
            "dilation": list(g.layer.dilation),
            "border": self.border,
            "engine": self.engine,
            "outputs": dict(self.outputs),
            "output_shape": list(self.output_shape),
            "params": g.params,
            "params_formula": self.params_formula,
            "macs": g.macs,
            "receptive_field": list(g.receptive_field) if g.receptive_field else None,
            "jump": list(g.jump) if g.jump else None,
            "inputs_per_value": self.inputs_per_value,
            "first_value_reads": {"rows": [r0, r1], "cols": [c0, c1]},
            "min": self.minimum,
            "max": self.maximum,
            "mean": self.mean,
            "maps": [m.to_dict() for m in self.maps],
            "notes": list(self.notes),
            "seconds": {k: round(v, 6) for k, v in self.seconds.items()},
        }
