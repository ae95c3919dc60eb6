"""Shape math of a convolution layer, and of a stack of layers.

Pure Python (no NumPy), so ``convcli shape`` starts fast. Sizes are given as
``(rows, cols)`` pairs; a 1-D signal of length N is the pair ``(1, N)``.

For one axis with input size ``n``, kernel size ``k``, dilation ``d``, stride
``s`` and padding ``before``/``after``::

    k_eff = d * (k - 1) + 1
    out   = floor((n + before + after - k_eff) / s) + 1

Padding rules:

``valid``
    no padding.
``same`` (alias ``tf-same``)
    ``out = ceil(n / s)``, ``total = max((out - 1) * s + k_eff - n, 0)``,
    ``before = total // 2``, the odd pixel after. At stride 1 this is
    ``k_eff - 1`` in total, as PyTorch's ``padding='same'``; at any stride it
    is TensorFlow's ``SAME``.
``full``
    ``k_eff - 1`` on each side: every placement that overlaps the input.

Receptive field, jump and effective padding of a stack follow the recurrence
(per axis, starting from ``r = j = 1``, ``P = 0``)::

    r_l = r_(l-1) + (k_eff_l - 1) * j_(l-1)
    j_l = j_(l-1) * s_l
    P_l = P_(l-1) + before_l * j_(l-1)

Output unit ``u`` of layer ``l`` reads input pixels ``u*j_l - P_l`` to
``u*j_l - P_l + r_l - 1`` (0-based, inclusive), before clipping to the image.

Examples
--------
>>> g = conv_geometry((224, 224), (7, 7), stride=2, padding=3)
>>> g.output
(112, 112)
>>> g.receptive_field
(7, 7)
>>> conv_geometry((224, 224), (7, 7), stride=2, padding="same").padding
((2, 3), (2, 3))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

from .errors import ParameterError, ShapeError

__all__ = [
    "Pair",
    "Padding2D",
    "PADDING_RULES",
    "PaddingSpec",
    "ConvLayer",
    "LayerGeometry",
    "parse_pair",
    "parse_count",
    "effective_kernel",
    "resolve_axis_padding",
    "axis_output_size",
    "conv_geometry",
    "layer_geometry",
    "stack_geometry",
]

Pair = tuple[int, int]
#: ``((top, bottom), (left, right))``
Padding2D = tuple[tuple[int, int], tuple[int, int]]
PairLike = Union[int, str, tuple[int, int], list[int]]

PADDING_RULES = ("same", "valid", "full")
_RULE_ALIASES = {"same": "same", "tf-same": "same", "valid": "valid", "full": "full"}
_AXIS_NAMES = ("height", "width")


def _to_int(name: str, text: str) -> int:
    text = text.strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ParameterError(f"{name}: {text!r} is not a whole number")
    return int(text)


def parse_count(name: str, value: int | str, *, minimum: int = 1) -> int:
    """Parse a whole number of at least ``minimum`` (channels, groups).

    >>> parse_count("--cin", "3")
    3
    """
    n = value if isinstance(value, int) and not isinstance(value, bool) else _to_int(name, str(value))
    if n < minimum:
        raise ParameterError(f"{name} must be at least {minimum}, got {n}")
    return n


def parse_pair(name: str, value: PairLike, *, minimum: int = 1) -> Pair:
    """Parse ``N``, ``"N"``, ``"HxW"`` or ``(H, W)`` into ``(H, W)``.

    >>> parse_pair("stride", "2x1")
    (2, 1)
    >>> parse_pair("stride", 3)
    (3, 3)
    """
    if isinstance(value, bool):
        raise ParameterError(f"{name} must be a whole number or HxW, not {value!r}")
    if isinstance(value, int):
        pair = (value, value)
    elif isinstance(value, str):
        parts = re.split(r"\s*[xX×]\s*", value.strip())
        if len(parts) == 1:
            n = _to_int(name, parts[0])
            pair = (n, n)
        elif len(parts) == 2:
            pair = (_to_int(name, parts[0]), _to_int(name, parts[1]))
        else:
            raise ParameterError(f"{name}: {value!r} is not N or HxW (for example 3 or 3x5)")
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ParameterError(f"{name} must hold whole numbers, got {value!r}")
        pair = (int(value[0]), int(value[1]))
    else:
        raise ParameterError(f"{name} must be N, HxW or a pair (H, W), got {value!r}")
    for v in pair:
        if v < minimum:
            raise ParameterError(f"{name} must be at least {minimum}, got {v}")
    return pair


@dataclass(frozen=True)
class PaddingSpec:
    """Padding as the user asked for it: a rule name or explicit per-side sizes.

    >>> PaddingSpec.parse("1,2").explicit
    ((1, 2), (1, 2))
    >>> PaddingSpec.parse("1,2,3,4").explicit
    ((1, 2), (3, 4))
    >>> PaddingSpec.parse("tf-same").rule
    'same'
    """

    rule: str | None = None
    explicit: Padding2D | None = None

    @classmethod
    def parse(cls, value: PaddingLike) -> PaddingSpec:
        if isinstance(value, PaddingSpec):
            return value
        if isinstance(value, bool):
            raise ParameterError(f"padding must be a number or a rule, not {value!r}")
        if isinstance(value, int):
            return cls(explicit=_check_pads(((value, value), (value, value))))
        if isinstance(value, (tuple, list)):
            flat = list(value)
            if len(flat) == 2 and all(isinstance(v, (tuple, list)) for v in flat):
                flat = [*flat[0], *flat[1]]
            return cls(explicit=_pads_from_numbers(flat, repr(value)))
        if not isinstance(value, str):
            raise ParameterError(f"padding: unsupported value {value!r}")
        text = value.strip().lower()
        if text in _RULE_ALIASES:
            return cls(rule=_RULE_ALIASES[text])
        if re.fullmatch(r"\d+\s*[x×]\s*\d+", text):
            h, w = parse_pair("padding", text, minimum=0)
            return cls(explicit=((h, h), (w, w)))
        parts = [p for p in re.split(r"[,\s]+", text) if p]
        if parts and all(re.fullmatch(r"[+-]?\d+", p) for p in parts):
            return cls(explicit=_pads_from_numbers([int(p) for p in parts], value))
        raise ParameterError(
            f"padding: {value!r} is not understood; use same, valid, full, N, HxW, "
            "BEFORE,AFTER or TOP,BOTTOM,LEFT,RIGHT"
        )

    def resolve(self, input_size: Pair, kernel: Pair, stride: Pair, dilation: Pair) -> Padding2D:
        """The per-side padding ``((top, bottom), (left, right))`` for this input."""
        if self.explicit is not None:
            return self.explicit
        assert self.rule is not None
        return tuple(  # type: ignore[return-value]
            resolve_axis_padding(self.rule, n, effective_kernel(k, d), s)
            for n, k, s, d in zip(input_size, kernel, stride, dilation)
        )

    def __str__(self) -> str:
        if self.rule is not None:
            return self.rule
        assert self.explicit is not None
        (t, b), (l, r) = self.explicit
        if t == b == l == r:
            return str(t)
        return f"{t},{b},{l},{r}"


PaddingLike = Union[int, str, tuple, list, PaddingSpec]


def _pads_from_numbers(nums: list, shown: str) -> Padding2D:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in nums):
        raise ParameterError(f"padding must hold whole numbers, got {shown}")
    if len(nums) == 1:
        pads = ((nums[0],) * 2, (nums[0],) * 2)
    elif len(nums) == 2:
        pads = ((nums[0], nums[1]), (nums[0], nums[1]))
    elif len(nums) == 4:
        pads = ((nums[0], nums[1]), (nums[2], nums[3]))
    else:
        raise ParameterError(
            f"padding: {shown!r} has {len(nums)} numbers; give 1 (all sides), "
            "2 (before,after) or 4 (top,bottom,left,right)"
        )
    return _check_pads(pads)


def _check_pads(pads: Padding2D) -> Padding2D:
    for side in (*pads[0], *pads[1]):
        if side < 0:
            raise ParameterError(f"padding must not be negative, got {side}")
    return pads


def effective_kernel(k: int, d: int) -> int:
    """Extent of a dilated kernel: ``d * (k - 1) + 1``."""
    return d * (k - 1) + 1


def resolve_axis_padding(rule: str, n: int, k_eff: int, s: int) -> tuple[int, int]:
    """``(before, after)`` padding of one axis for a named rule."""
    if rule == "valid":
        return (0, 0)
    if rule == "full":
        return (k_eff - 1, k_eff - 1)
    if rule == "same":
        out = -(-n // s)
        total = max((out - 1) * s + k_eff - n, 0)
        return (total // 2, total - total // 2)
    raise ParameterError(f"unknown padding rule {rule!r}; use one of {', '.join(PADDING_RULES)}")


def axis_output_size(
    n: int, k: int, s: int, d: int, before: int, after: int, *, axis: str = "width", where: str = ""
) -> int:
    """``floor((n + before + after - k_eff) / s) + 1``, or a ShapeError when empty."""
    k_eff = effective_kernel(k, d)
    span = n + before + after - k_eff
    if span < 0:
        dil = f" (k_eff = {d}*({k}-1)+1)" if d != 1 else ""
        raise ShapeError(
            f"{where}output {axis} would be empty: floor(({n} + {before} + {after} - {k_eff}) / {s}) + 1"
            f" = {span // s + 1}{dil}; the kernel is larger than the padded input, "
            "so use padding 'same', more padding, or a smaller kernel or dilation"
        )
    return span // s + 1


@dataclass(frozen=True)
class ConvLayer:
    """One layer of a stack, as specified (sizes still unresolved)."""

    kernel: Pair
    stride: Pair = (1, 1)
    dilation: Pair = (1, 1)
    padding: PaddingSpec = field(default_factory=lambda: PaddingSpec(explicit=((0, 0), (0, 0))))
    name: str = "conv"
    #: Output channels; ``None`` keeps the input's channel count (as a per-channel filter).
    channels_out: int | None = None
    groups: int = 1
    bias: bool = True


@dataclass(frozen=True)
class LayerGeometry:
    """What one layer does to the shape, and where its output units look."""

    layer: ConvLayer
    input: Pair
    output: Pair
    padding: Padding2D
    effective_kernel: Pair
    receptive_field: Pair
    jump: Pair
    effective_padding: Pair
    channels_in: int | None
    channels_out: int | None
    params: int | None
    macs: int | None

    def input_region(self, row: int, col: int) -> tuple[Pair, Pair]:
        """Unclipped input rows and cols ``((r0, r1), (c0, c1))`` seen by one output unit."""
        spans = []
        for u, j, p, r in zip((row, col), self.jump, self.effective_padding, self.receptive_field):
            start = u * j - p
            spans.append((start, start + r - 1))
        return spans[0], spans[1]

    def to_dict(self) -> dict:
        return {
            "name": self.layer.name,
            "type": "conv",
            "input": list(self.input),
            "kernel": list(self.layer.kernel),
            "stride": list(self.layer.stride),
            "dilation": list(self.layer.dilation),
            "padding": [list(self.padding[0]), list(self.padding[1])],
            "padding_rule": self.layer.padding.rule,
            "output": list(self.output),
            "effective_kernel": list(self.effective_kernel),
            "receptive_field": list(self.receptive_field),
            "jump": list(self.jump),
            "effective_padding": list(self.effective_padding),
            "channels_in": self.channels_in,
            "channels_out": self.channels_out,
            "params": self.params,
            "macs": self.macs,
        }


def layer_geometry(
    layer: ConvLayer,
    input_size: Pair,
    *,
    channels_in: int | None = None,
    previous: LayerGeometry | None = None,
    where: str = "",
) -> LayerGeometry:
    """Geometry of ``layer`` applied to ``input_size`` (after ``previous``, if any)."""
    pads = layer.padding.resolve(input_size, layer.kernel, layer.stride, layer.dilation)
    out = tuple(
        axis_output_size(n, k, s, d, b, a, axis=name, where=where)
        for n, k, s, d, (b, a), name in zip(
            input_size, layer.kernel, layer.stride, layer.dilation, pads, _AXIS_NAMES
        )
    )
    k_eff = tuple(effective_kernel(k, d) for k, d in zip(layer.kernel, layer.dilation))
    r0, j0, p0 = (
        (previous.receptive_field, previous.jump, previous.effective_padding)
        if previous is not None
        else ((1, 1), (1, 1), (0, 0))
    )
    rf = tuple(r + (ke - 1) * j for r, ke, j in zip(r0, k_eff, j0))
    jump = tuple(j * s for j, s in zip(j0, layer.stride))
    eff_pad = tuple(p + b * j for p, (b, _), j in zip(p0, pads, j0))

    params = macs = None
    c_out = layer.channels_out if layer.channels_out is not None else channels_in
    if channels_in is not None and c_out is not None:
        g = layer.groups
        if g < 1 or channels_in % g or c_out % g:
            raise ShapeError(
                f"{where}groups={g} must divide both input channels ({channels_in}) "
                f"and output channels ({c_out})"
            )
        taps = (channels_in // g) * layer.kernel[0] * layer.kernel[1]
        params = c_out * taps + (c_out if layer.bias else 0)
        macs = c_out * out[0] * out[1] * taps
    return LayerGeometry(
        layer=layer,
        input=input_size,
        output=out,  # type: ignore[arg-type]
        padding=pads,
        effective_kernel=k_eff,  # type: ignore[arg-type]
        receptive_field=rf,  # type: ignore[arg-type]
        jump=jump,  # type: ignore[arg-type]
        effective_padding=eff_pad,  # type: ignore[arg-type]
        channels_in=channels_in,
        channels_out=c_out,
        params=params,
        macs=macs,
    )


def stack_geometry(
    input_size: Pair, layers: list[ConvLayer], *, channels_in: int | None = None
) -> list[LayerGeometry]:
    """Geometry of each layer of a stack, in order; the last one is the stack's output."""
    result: list[LayerGeometry] = []
    size, channels, prev = input_size, channels_in, None
    for i, layer in enumerate(layers):
        where = f"layer {i + 1} ({layer.name}): " if len(layers) > 1 else ""
        prev = layer_geometry(layer, size, channels_in=channels, previous=prev, where=where)
        result.append(prev)
        size, channels = prev.output, prev.channels_out
    return result


def conv_geometry(
    input_size: PairLike,
    kernel: PairLike,
    *,
    stride: PairLike = 1,
    dilation: PairLike = 1,
    padding: PaddingLike = 0,
    channels_in: int | None = None,
    channels_out: int | None = None,
    groups: int = 1,
    bias: bool = True,
) -> LayerGeometry:
    """Geometry of a single convolution layer, parsing every size argument."""
    layer = ConvLayer(
        kernel=parse_pair("kernel size", kernel),
        stride=parse_pair("stride", stride),
        dilation=parse_pair("dilation", dilation),
        padding=PaddingSpec.parse(padding),
        channels_out=channels_out,
        groups=groups,
        bias=bias,
    )
    return layer_geometry(layer, parse_pair("input size", input_size), channels_in=channels_in)
