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

Layer kinds (PyTorch's rules, checked against ``torch.nn`` in the tests):

``conv``
    the formula above (``Conv2d``).
``maxpool``, ``avgpool``
    the same, or with ``ceil_mode``
    ``out = ceil((n + before + after - k_eff) / s) + 1``, less one when the
    last window would start at or past ``n + before`` (it must start inside
    the input or the left padding). Padding may be at most ``k_eff // 2`` on
    each side. Pooling has no weights; the stride defaults to the kernel size.
``convtranspose``
    ``out = (n - 1) * s - before - after + k_eff + output_padding``
    (``ConvTranspose2d``: ``(n-1)s - 2p + d(k-1) + output_padding + 1``), with
    ``output_padding`` smaller than the stride or the dilation.

Parameters and multiply-accumulates of a convolution with ``C_in`` input and
``C_out`` output channels in ``g`` groups::

    params = C_out * (C_in / g) * kh * kw + C_out      (the last term only with bias)
    MACs   = C_out * H_out * W_out * (C_in / g) * kh * kw
    MACs   = C_in * H_in * W_in * (C_out / g) * kh * kw   (transposed)

Receptive field, jump and effective padding of a stack follow the recurrence
(per axis, starting from ``r = j = 1``, ``P = 0``)::

    r_l = r_(l-1) + (k_eff_l - 1) * j_(l-1)
    j_l = j_(l-1) * s_l
    P_l = P_(l-1) + before_l * j_(l-1)

Output unit ``u`` of layer ``l`` reads input pixels ``u*j_l - P_l`` to
``u*j_l - P_l + r_l - 1`` (0-based, inclusive), before clipping to the image.
A transposed convolution has no such constant field (its units see a varying
number of inputs): from it on, ``r``, ``j`` and ``P`` are ``None``, and
:meth:`NetworkGeometry.unit_region` walks the layers back one by one instead.

Examples
--------
>>> g = conv_geometry((224, 224), (7, 7), stride=2, padding=3)
>>> g.output
(112, 112)
>>> g.receptive_field
(7, 7)
>>> conv_geometry((224, 224), (7, 7), stride=2, padding="same").padding
((2, 3), (2, 3))
>>> net = network_geometry((32, 32), parse_layer_spec("conv k3; conv k3; conv k3"))
>>> [g.output for g in net.layers], net.receptive_field
([(30, 30), (28, 28), (26, 26)], (7, 7))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any, Union

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
    "LAYER_KINDS",
    "pool_output_size",
    "transposed_output_size",
    "NetworkGeometry",
    "UnitRegion",
    "ArchSpec",
    "network_geometry",
    "make_layer",
    "parse_layer_spec",
    "layers_from_lists",
    "parse_arch",
    "parse_unit",
    "parse_size",
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


def pool_output_size(
    n: int,
    k: int,
    s: int,
    d: int,
    before: int,
    after: int,
    *,
    ceil_mode: bool = False,
    axis: str = "width",
    where: str = "",
) -> int:
    """Output size of a pooling window, with PyTorch's ``ceil_mode`` rule.

    >>> pool_output_size(56, 3, 2, 1, 0, 0, ceil_mode=True)   # GoogLeNet's pools
    28
    >>> pool_output_size(4, 2, 2, 1, 1, 1, ceil_mode=True)    # the last window would start at 4 + 1
    3
    """
    if not ceil_mode:
        return axis_output_size(n, k, s, d, before, after, axis=axis, where=where)
    k_eff = effective_kernel(k, d)
    out = -(-(n + before + after - k_eff) // s) + 1
    if (out - 1) * s >= n + before:
        out -= 1
    if out < 1:
        raise ShapeError(
            f"{where}output {axis} would be empty: ceil(({n} + {before} + {after} - {k_eff}) / {s}) + 1"
            f" = {out}; the pooling window is larger than the padded input, "
            "so use a smaller window or a larger input"
        )
    return out


def transposed_output_size(
    n: int,
    k: int,
    s: int,
    d: int,
    before: int,
    after: int,
    output_padding: int = 0,
    *,
    axis: str = "width",
    where: str = "",
) -> int:
    """``(n - 1) * s - before - after + k_eff + output_padding``, or a ShapeError when empty.

    >>> transposed_output_size(16, 3, 2, 1, 1, 1, 1)   # ConvTranspose2d(k=3, s=2, p=1, output_padding=1)
    32
    """
    k_eff = effective_kernel(k, d)
    out = (n - 1) * s - before - after + k_eff + output_padding
    if out < 1:
        raise ShapeError(
            f"{where}output {axis} would be empty: ({n} - 1)*{s} - {before} - {after} + {k_eff}"
            f" + {output_padding} = {out}; the padding removes more than the layer produces, "
            "so use less padding"
        )
    return out


#: What a layer can be: a convolution, a transposed convolution, or a pooling window.
LAYER_KINDS = ("conv", "convtranspose", "maxpool", "avgpool")
_POOL_KINDS = ("maxpool", "avgpool")


@dataclass(frozen=True)
class ConvLayer:
    """One layer of a stack, as specified (sizes still unresolved).

    ``kind`` is one of :data:`LAYER_KINDS`; ``ceil_mode`` applies to pooling,
    ``output_padding`` to ``convtranspose``.
    """

    kernel: Pair
    stride: Pair = (1, 1)
    dilation: Pair = (1, 1)
    padding: PaddingSpec = field(default_factory=lambda: PaddingSpec(explicit=((0, 0), (0, 0))))
    name: str = "conv"
    #: Output channels; ``None`` keeps the input's channel count (as a per-channel filter).
    channels_out: int | None = None
    groups: int = 1
    bias: bool = True
    kind: str = "conv"
    ceil_mode: bool = False
    output_padding: Pair = (0, 0)

    @property
    def is_pool(self) -> bool:
        return self.kind in _POOL_KINDS


@dataclass(frozen=True)
class LayerGeometry:
    """What one layer does to the shape, and where its output units look.

    ``receptive_field``, ``jump`` and ``effective_padding`` are ``None`` from a
    transposed convolution on (see the module docstring).
    """

    layer: ConvLayer
    input: Pair
    output: Pair
    padding: Padding2D
    effective_kernel: Pair
    receptive_field: Pair | None
    jump: Pair | None
    effective_padding: Pair | None
    channels_in: int | None
    channels_out: int | None
    params: int | None
    macs: int | None

    def input_region(self, row: int, col: int) -> tuple[Pair, Pair]:
        """Unclipped input rows and cols ``((r0, r1), (c0, c1))`` seen by one output unit."""
        if self.receptive_field is None or self.jump is None or self.effective_padding is None:
            raise ShapeError(
                "a unit after a transposed convolution has no fixed receptive field; "
                "use NetworkGeometry.unit_region"
            )
        spans = []
        for u, j, p, r in zip((row, col), self.jump, self.effective_padding, self.receptive_field):
            start = u * j - p
            spans.append((start, start + r - 1))
        return spans[0], spans[1]

    def formulas(self) -> tuple[str, str]:
        """The output-size formula of each axis with this layer's numbers filled in.

        >>> conv_geometry(224, 7, stride=2, padding="same").formulas()[0]
        'floor((224 + 2 + 3 - 7) / 2) + 1 = 112'
        """
        layer = self.layer
        lines = []
        for i in range(2):
            n, s, ke, o = self.input[i], layer.stride[i], self.effective_kernel[i], self.output[i]
            b, a = self.padding[i]
            if layer.kind == "convtranspose":
                op = layer.output_padding[i]
                lines.append(f"({n} - 1)*{s} - {b} - {a} + {ke} + {op} = {o}")
            elif layer.ceil_mode:
                up = -(-(n + b + a - ke) // s) + 1
                less = " - 1" if up != o else ""
                lines.append(f"ceil(({n} + {b} + {a} - {ke}) / {s}) + 1{less} = {o}")
            else:
                lines.append(f"floor(({n} + {b} + {a} - {ke}) / {s}) + 1 = {o}")
        return lines[0], lines[1]

    def to_dict(self) -> dict:
        return {
            "name": self.layer.name,
            "type": self.layer.kind,
            "input": list(self.input),
            "kernel": list(self.layer.kernel),
            "stride": list(self.layer.stride),
            "dilation": list(self.layer.dilation),
            "padding": [list(self.padding[0]), list(self.padding[1])],
            "padding_rule": self.layer.padding.rule,
            "output": list(self.output),
            "effective_kernel": list(self.effective_kernel),
            "receptive_field": _list_or_none(self.receptive_field),
            "jump": _list_or_none(self.jump),
            "effective_padding": _list_or_none(self.effective_padding),
            "channels_in": self.channels_in,
            "channels_out": self.channels_out,
            "params": self.params,
            "macs": self.macs,
        }


def _list_or_none(pair: Pair | None) -> list[int] | None:
    return None if pair is None else list(pair)


def _check_layer(layer: ConvLayer, pads: Padding2D, where: str) -> None:
    """Refuse what PyTorch refuses for this kind of layer, naming the rule."""
    kind = layer.kind
    if kind not in LAYER_KINDS:
        raise ParameterError(f"{where}unknown layer type {kind!r}; use one of {', '.join(LAYER_KINDS)}")
    if layer.ceil_mode and not layer.is_pool:
        raise ParameterError(f"{where}ceil_mode applies to maxpool and avgpool layers only, not {kind}")
    if layer.output_padding != (0, 0) and kind != "convtranspose":
        raise ParameterError(f"{where}output_padding applies to transposed convolutions only, not {kind}")
    if layer.is_pool:
        if layer.channels_out is not None or layer.groups != 1:
            raise ParameterError(f"{where}a {kind} layer keeps its input channels; give it no channels or groups")
        if kind == "avgpool" and layer.dilation != (1, 1):
            raise ParameterError(f"{where}avgpool has no dilation (PyTorch's AvgPool2d takes none)")
        if layer.padding.rule == "same":
            return
        for k, d, sides in zip(layer.kernel, layer.dilation, pads):
            k_eff = effective_kernel(k, d)
            # torch.nn checks pad <= k_eff // 2; its pooling kernels then check pad <= k // 2 too
            limit = min(k_eff // 2, k // 2)
            for side in sides:
                if side > limit:
                    why = f"k_eff/2 = {k_eff}/2" + (f" and k/2 = {k}/2 (PyTorch's pooling kernels check both)"
                                                     if d > 1 else "")
                    raise ShapeError(
                        f"{where}pool padding {side} is too large: it must be at most {why}; "
                        f"use padding {limit} or less"
                    )
    if kind == "convtranspose":
        if layer.padding.rule in ("same", "full"):
            raise ParameterError(
                f"{where}a transposed convolution takes explicit padding (as ConvTranspose2d), "
                f"not {layer.padding.rule!r}"
            )
        for op, s, d in zip(layer.output_padding, layer.stride, layer.dilation):
            if op >= s and op >= d:
                raise ShapeError(
                    f"{where}output_padding must be smaller than the stride or the dilation, but "
                    f"output_padding {op} >= stride {s} and >= dilation {d} in "
                    f"out = (in-1)*s - 2p + d*(k-1) + output_padding + 1; use output_padding {max(s, d) - 1} or less"
                )


def _params_macs(
    layer: ConvLayer, c_in: int | None, c_out: int | None, size_in: Pair, size_out: Pair, where: str
) -> tuple[int | None, int | None]:
    if layer.is_pool:
        return 0, 0
    if c_in is None or c_out is None:
        return None, None
    g = layer.groups
    if g < 1 or c_in % g or c_out % g:
        raise ShapeError(
            f"{where}groups={g} must divide both input channels ({c_in}) and output channels "
            f"({c_out}): {c_in} / {g} = {c_in / g:g} and {c_out} / {g} = {c_out / g:g}; "
            "choose groups that divide both"
        )
    kh, kw = layer.kernel
    params = c_out * (c_in // g) * kh * kw + (c_out if layer.bias else 0)
    if layer.kind == "convtranspose":
        macs = c_in * size_in[0] * size_in[1] * (c_out // g) * kh * kw
    else:
        macs = c_out * size_out[0] * size_out[1] * (c_in // g) * kh * kw
    return params, macs


def layer_geometry(
    layer: ConvLayer,
    input_size: Pair,
    *,
    channels_in: int | None = None,
    previous: LayerGeometry | None = None,
    where: str = "",
    axis_names: tuple[str, str] = _AXIS_NAMES,
) -> LayerGeometry:
    """Geometry of ``layer`` applied to ``input_size`` (after ``previous``, if any)."""
    pads = layer.padding.resolve(input_size, layer.kernel, layer.stride, layer.dilation)
    _check_layer(layer, pads, where)
    axes = zip(input_size, layer.kernel, layer.stride, layer.dilation, pads, layer.output_padding, axis_names)
    if layer.kind == "convtranspose":
        out = tuple(
            transposed_output_size(n, k, s, d, b, a, op, axis=name, where=where)
            for n, k, s, d, (b, a), op, name in axes
        )
    else:
        out = tuple(
            pool_output_size(n, k, s, d, b, a, ceil_mode=layer.ceil_mode, axis=name, where=where)
            for n, k, s, d, (b, a), _, name in axes
        )
    k_eff = tuple(effective_kernel(k, d) for k, d in zip(layer.kernel, layer.dilation))
    if previous is None:
        r0, j0, p0 = (1, 1), (1, 1), (0, 0)
    else:
        r0, j0, p0 = previous.receptive_field, previous.jump, previous.effective_padding
    if layer.kind == "convtranspose" or r0 is None or j0 is None or p0 is None:
        rf = jump = eff_pad = None
    else:
        rf = tuple(r + (ke - 1) * j for r, ke, j in zip(r0, k_eff, j0))
        jump = tuple(j * s for j, s in zip(j0, layer.stride))
        eff_pad = tuple(p + b * j for p, (b, _), j in zip(p0, pads, j0))

    if layer.is_pool:
        c_out = channels_in
    else:
        c_out = layer.channels_out if layer.channels_out is not None else channels_in
    params, macs = _params_macs(layer, channels_in, c_out, input_size, out, where)  # type: ignore[arg-type]
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
    if not layers:
        return []
    return list(network_geometry(input_size, layers, channels_in=channels_in).layers)


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


# ----------------------------------------------------------------------------- stacks


Span = tuple[int, int]


@dataclass(frozen=True)
class UnitRegion:
    """The input pixels one output unit of a stack reads, per axis ``(first, last)``, inclusive.

    ``unclipped`` may reach into the padding (negative or past the input);
    ``clipped`` is cut to the image and is ``None`` when the unit reads padding
    only. Both are ``None`` when the unit reads no input position at all (a
    transposed convolution whose taps all miss it).
    """

    unit: Pair
    input: Pair
    unclipped: tuple[Span, Span] | None
    clipped: tuple[Span, Span] | None

    @property
    def size(self) -> Pair | None:
        """Rows and cols of the unclipped region."""
        if self.unclipped is None:
            return None
        (r0, r1), (c0, c1) = self.unclipped
        return (r1 - r0 + 1, c1 - c0 + 1)

    @property
    def exceeds_input(self) -> tuple[bool, bool]:
        """Per axis: is the region larger than the input itself?"""
        size = self.size
        if size is None:
            return (False, False)
        return (size[0] > self.input[0], size[1] > self.input[1])


def _back(lg: LayerGeometry, axis: int, units: set[int]) -> set[int]:
    """The positions of ``lg``'s input (unclipped) that its output ``units`` read, along one axis."""
    layer = lg.layer
    k, s, d = layer.kernel[axis], layer.stride[axis], layer.dilation[axis]
    before = lg.padding[axis][0]
    if layer.kind != "convtranspose":
        return {o * s - before + t * d for o in units for t in range(k)}
    # input i reaches output o = i*s - before + t*d through tap t
    return {(o + before - t * d) // s for o in units for t in range(k) if (o + before - t * d) % s == 0}


@dataclass(frozen=True)
class NetworkGeometry:
    """A whole stack: every layer's geometry, and the totals of the stack.

    ``ndim`` is 1 for a 1-D stack (sizes are still pairs ``(1, N)``;
    :meth:`to_dict` keeps only the length axis).
    """

    input: Pair
    layers: tuple[LayerGeometry, ...]
    channels_in: int | None = None
    ndim: int = 2

    @property
    def output(self) -> Pair:
        return self.layers[-1].output

    @property
    def channels_out(self) -> int | None:
        return self.layers[-1].channels_out

    @property
    def receptive_field(self) -> Pair | None:
        return self.layers[-1].receptive_field

    @property
    def jump(self) -> Pair | None:
        return self.layers[-1].jump

    @property
    def effective_padding(self) -> Pair | None:
        return self.layers[-1].effective_padding

    @property
    def params(self) -> int | None:
        values = [g.params for g in self.layers]
        return None if None in values else sum(values)  # type: ignore[arg-type]

    @property
    def macs(self) -> int | None:
        values = [g.macs for g in self.layers]
        return None if None in values else sum(values)  # type: ignore[arg-type]

    def check_unit(self, unit: Pair) -> None:
        for u, n, name in zip(unit, self.output, self.axis_names):
            if not 0 <= u < n:
                at = str(unit[1]) if self.ndim == 1 else f"({unit[0]}, {unit[1]})"
                raise ParameterError(
                    f"unit {at} is outside the output {self.show(self.output)}: "
                    f"the {name} index must be 0 to {n - 1}"
                )

    def cone(self, unit: Pair) -> list[tuple[Span, Span] | None]:
        """For the input (index 0) and each layer (index l), the first and last units that
        ``unit`` of the last layer depends on, unclipped: ``((r0, r1), (c0, c1))``, or
        ``None`` where it depends on none (a transposed convolution can miss a unit)."""
        self.check_unit(unit)
        # Through convolutions and pools only the first and last position matter; a transposed
        # convolution further back needs every position (its taps can miss some).
        kinds = [g.layer.kind for g in self.layers]
        members = [("convtranspose" in kinds[: i + 1]) for i in range(len(kinds))]
        sets: list[set[int]] = [{unit[0]}, {unit[1]}]
        result: list[tuple[Span, Span] | None] = []
        for i in [None, *reversed(range(len(self.layers)))]:
            if i is not None:
                if not members[i]:
                    sets = [{min(v), max(v)} if v else v for v in sets]
                sets = [_back(self.layers[i], axis, sets[axis]) for axis in range(2)]
            rows, cols = sets
            result.append(((min(rows), max(rows)), (min(cols), max(cols))) if rows and cols else None)
        return result[::-1]

    def unit_region(self, unit: Pair) -> UnitRegion:
        """The input region output unit ``unit = (row, col)`` of the last layer reads.

        >>> net = network_geometry((224, 224), parse_layer_spec("conv k7 s2 p3"))
        >>> net.unit_region((0, 10)).unclipped, net.unit_region((0, 10)).clipped
        (((-3, 3), (17, 23)), ((0, 3), (17, 23)))
        """
        region = self.cone(unit)[0]
        clipped: tuple[Span, Span] | None = None
        if region is not None:
            cut = [(max(a, 0), min(b, n - 1)) for (a, b), n in zip(region, self.input)]
            if all(a <= b for a, b in cut):
                clipped = (cut[0], cut[1])
        return UnitRegion(unit=unit, input=self.input, unclipped=region, clipped=clipped)

    @property
    def axis_names(self) -> tuple[str, str]:
        return _AXIS_NAMES if self.ndim == 2 else ("height", "length")

    def show(self, pair: Pair | tuple[Any, Any]) -> str:
        """``"HxW"``, or ``"N"`` in 1-D."""
        return str(pair[1]) if self.ndim == 1 else f"{pair[0]}x{pair[1]}"

    def axes(self, pair: Pair | None) -> list | None:
        """A pair as the JSON list: both axes, or only the length in 1-D."""
        return None if pair is None else list(pair[2 - self.ndim :])

    def to_dict(self) -> dict:
        """The ``convcli shape --json`` document (a stable layout: scripts read these keys).

        ``{"input", "layers": [{"name", "type", "kernel", "stride", "dilation",
        "padding", "output", "receptive_field", "jump", "effective_padding",
        "params", "macs"}, ...], "output", "receptive_field", "jump",
        "effective_padding", "params", "macs"}``; ``padding`` is
        ``[[top, bottom], [left, right]]``. In 1-D every list has one element.
        """
        pick = self.axes
        layers = [
            {
                "name": g.layer.name,
                "type": g.layer.kind,
                "kernel": pick(g.layer.kernel),
                "stride": pick(g.layer.stride),
                "dilation": pick(g.layer.dilation),
                "padding": [list(p) for p in g.padding[2 - self.ndim :]],
                "output": pick(g.output),
                "receptive_field": pick(g.receptive_field),
                "jump": pick(g.jump),
                "effective_padding": pick(g.effective_padding),
                "params": g.params,
                "macs": g.macs,
            }
            for g in self.layers
        ]
        # a one-layer result keeps the layer's own keys at the top level too, as the one-layer
        # calculator printed them before stacks existed
        own = ("type", "kernel", "stride", "dilation", "padding")
        return {
            "input": pick(self.input),
            **({key: layers[0][key] for key in own} if len(layers) == 1 else {}),
            "layers": layers,
            "output": pick(self.output),
            "receptive_field": pick(self.receptive_field),
            "jump": pick(self.jump),
            "effective_padding": pick(self.effective_padding),
            "params": self.params,
            "macs": self.macs,
        }


def network_geometry(
    input_size: Pair, layers: list[ConvLayer] | tuple[ConvLayer, ...], *, channels_in: int | None = None, ndim: int = 2
) -> NetworkGeometry:
    """Geometry of a stack of layers applied to ``input_size`` (``(1, N)`` in 1-D).

    Errors name the layer: ``layer 3 (conv3): output width would be empty: ...``.
    """
    if not layers:
        raise ParameterError("the stack has no layers")
    names = _AXIS_NAMES if ndim == 2 else ("height", "length")
    result: list[LayerGeometry] = []
    size, channels, prev = input_size, channels_in, None
    for i, layer in enumerate(layers):
        where = f"layer {i + 1} ({layer.name}): " if len(layers) > 1 else ""
        prev = layer_geometry(layer, size, channels_in=channels, previous=prev, where=where, axis_names=names)
        result.append(prev)
        size, channels = prev.output, prev.channels_out
    return NetworkGeometry(input=input_size, layers=tuple(result), channels_in=channels_in, ndim=ndim)


# ----------------------------------------------------------------------------- layer specs


def _axes(name: str, value: Any, ndim: int, *, minimum: int = 1, flat: int = 1) -> Pair:
    """A size for 2-D (``N``, ``HxW``, ``[H, W]``) or 1-D (``N``, stored as ``(flat, N)``)."""
    if ndim == 2:
        return parse_pair(name, value, minimum=minimum)
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, (list, tuple)) or (isinstance(value, str) and re.search(r"[xX×]", value)):
        raise ParameterError(f"{name}: a 1-D layer takes one number, not {value!r}")
    return (flat, parse_pair(name, value, minimum=minimum)[1])


def parse_size(name: str, value: Any, *, ndim: int = 2) -> Pair:
    """A size: ``N``, ``"HxW"`` or ``[H, W]`` in 2-D; one number ``N`` in 1-D, as ``(1, N)``.

    >>> parse_size("input size", "100", ndim=1)
    (1, 100)
    """
    return _axes(name, value, ndim)


def _padding(value: Any, ndim: int, where: str = "") -> PaddingSpec:
    try:
        spec = PaddingSpec.parse(value)
    except ParameterError as exc:
        raise ParameterError(f"{where}{exc}") from None
    if ndim == 2 or spec.explicit is None:
        return spec
    (t, b), (l, r) = spec.explicit
    if (t, b) != (l, r) or (isinstance(value, str) and re.search(r"[xX×]", value)):
        raise ParameterError(f"{where}padding: a 1-D layer takes N or BEFORE,AFTER, not {value!r}")
    return PaddingSpec(explicit=((0, 0), (l, r)))


def _kind(text: str, where: str = "") -> str:
    kind = text.strip().lower()
    if kind not in LAYER_KINDS:
        close = get_close_matches(kind, LAYER_KINDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ParameterError(f"{where}unknown layer type {text!r}; {hint}use one of {', '.join(LAYER_KINDS)}")
    return kind


def make_layer(
    kind: str = "conv",
    *,
    k: Any,
    s: Any = None,
    p: Any = None,
    d: Any = None,
    channels: Any = None,
    groups: Any = 1,
    bias: bool = True,
    ceil_mode: bool = False,
    output_padding: Any = None,
    name: str | None = None,
    ndim: int = 2,
    where: str = "",
) -> ConvLayer:
    """Build a layer from loosely typed values (ints, strings, ``[h, w]`` lists).

    Unset values take PyTorch's defaults: stride 1 (the kernel size for
    pooling), padding 0, dilation 1.

    >>> make_layer("maxpool", k=3).stride
    (3, 3)
    >>> make_layer("conv", k=5, p="1,2", ndim=1).padding.explicit
    ((0, 0), (1, 2))
    """
    kind = _kind(kind, where)
    try:
        kernel = _axes("kernel size", k, ndim)
        layer = ConvLayer(
            kind=kind,
            name=name or kind,
            kernel=kernel,
            stride=kernel if s is None and kind in _POOL_KINDS else _axes("stride", 1 if s is None else s, ndim),
            dilation=_axes("dilation", 1 if d is None else d, ndim),
            padding=_padding(0 if p is None else p, ndim),
            channels_out=None if channels is None else parse_count("channels", channels),
            groups=parse_count("groups", groups),
            bias=bias,
            ceil_mode=ceil_mode,
            output_padding=_axes("output_padding", 0 if output_padding is None else output_padding, ndim,
                                 minimum=0, flat=0),
        )
    except ParameterError as exc:
        if where and not str(exc).startswith(where):
            raise ParameterError(f"{where}{exc}") from None
        raise
    return layer


def _numbered(kinds: list[str]) -> list[str]:
    """Default names: conv1, maxpool1, conv2, ..."""
    seen: dict[str, int] = {}
    names = []
    for kind in kinds:
        seen[kind] = seen.get(kind, 0) + 1
        names.append(f"{kind}{seen[kind]}")
    return names


_TOKEN = re.compile(r"(op|k|s|p|d|c|g)(.+)")
_TOKEN_KEYS = {"k": "k", "s": "s", "p": "p", "d": "d", "c": "channels", "g": "groups", "op": "output_padding"}


def parse_layer_spec(text: str, *, ndim: int = 2) -> list[ConvLayer]:
    """Parse ``"conv k7 s2 p3; maxpool k3 s2 p1; conv k3 p1 c64"``.

    Each layer is a type (``conv``, ``convtranspose``, ``maxpool``,
    ``avgpool``) and words: ``kN`` kernel, ``sN`` stride, ``pPAD`` padding
    (``p3``, ``p3x1``, ``p1,2``, ``psame``, ``pvalid``, ``pfull``), ``dN``
    dilation, ``cN`` output channels, ``gN`` groups, ``opN`` output padding,
    ``ceil`` (ceil_mode), ``nobias``. Sizes are ``N`` or ``HxW``.

    >>> [(l.name, l.kernel, l.stride) for l in parse_layer_spec("conv k7 s2 p3; maxpool k3 s2 p1")]
    [('conv1', (7, 7), (2, 2)), ('maxpool1', (3, 3), (2, 2))]
    """
    parts = [part.split() for part in text.split(";")]
    parts = [words for words in parts if words]
    if not parts:
        raise ParameterError("--layers: no layers given; write for example 'conv k3 p1; maxpool k2'")
    kinds = [_kind(words[0], f"--layers layer {i + 1}: ") for i, words in enumerate(parts)]
    layers = []
    for i, (words, kind, name) in enumerate(zip(parts, kinds, _numbered(kinds))):
        where = f"--layers layer {i + 1} ({name}): "
        options: dict[str, Any] = {}
        for word in words[1:]:
            low = word.lower()
            if low in ("ceil", "ceil_mode"):
                options["ceil_mode"] = True
                continue
            if low in ("nobias", "no-bias"):
                options["bias"] = False
                continue
            match = _TOKEN.fullmatch(low)
            if match is None:
                raise ParameterError(
                    f"{where}{word!r} is not understood; use kN, sN, pPAD, dN, cN, gN, opN, ceil or nobias"
                )
            key = _TOKEN_KEYS[match.group(1)]
            if key in options:
                raise ParameterError(f"{where}{match.group(1)} is given twice")
            options[key] = match.group(2)
        if "k" not in options:
            raise ParameterError(f"{where}no kernel size; add kN (for example k3)")
        layers.append(make_layer(kind, name=name, ndim=ndim, where=where, **options))
    return layers


def _split(name: str, value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in str(value).split(",")]
    if any(not v for v in items):
        raise ParameterError(f"{name}: {value!r} has an empty item")
    return items


def layers_from_lists(
    *,
    k: str,
    s: str | None = None,
    p: str | None = None,
    d: str | None = None,
    channels: str | None = None,
    groups: str | None = None,
    bias: bool = True,
    transposed: bool = False,
    output_padding: str | None = None,
    ndim: int = 2,
) -> list[ConvLayer]:
    """Layers from comma lists that broadcast: ``k="3,3,3", s="1,2,1", p="0"``.

    The number of layers is the longest of the lists; every list has that many
    items or one. With one layer, ``p`` is a single padding (so ``"1,2"`` is
    before,after); with several, it is a list with one padding per layer.

    >>> [l.stride for l in layers_from_lists(k="3,3,3", s="1,2,1")]
    [(1, 1), (2, 2), (1, 1)]
    """
    lists = {
        "--k": _split("--k", k),
        "--s": _split("--s", s),
        "--d": _split("--d", d),
        "--cout": _split("--cout", channels),
        "--groups": _split("--groups", groups),
        "--output-padding": _split("--output-padding", output_padding),
    }
    count = max(len(v) for v in lists.values() if v is not None)
    lists["--p"] = [p] if p is not None and count == 1 else _split("--p", p)
    for name, items in lists.items():
        if items is not None and len(items) not in (1, count):
            extra = "; for per-side padding in a stack use --layers" if name == "--p" else ""
            raise ParameterError(f"{name} has {len(items)} values for {count} layers; give 1 or {count}{extra}")

    def at(name: str, i: int) -> str | None:
        items = lists[name]
        return None if items is None else items[0 if len(items) == 1 else i]

    kind = "convtranspose" if transposed else "conv"
    layers = []
    for i, name in enumerate(_numbered([kind] * count)):
        where = f"layer {i + 1} ({name}): " if count > 1 else ""
        layers.append(make_layer(
            kind, name=name, ndim=ndim, where=where, k=at("--k", i), s=at("--s", i), p=at("--p", i),
            d=at("--d", i), channels=at("--cout", i), groups=at("--groups", i) or 1, bias=bias,
            output_padding=at("--output-padding", i),
        ))
    return layers


@dataclass(frozen=True)
class ArchSpec:
    """A stack read from an architecture file: its layers, and optionally its input."""

    name: str | None
    input: Pair | None
    channels_in: int | None
    layers: tuple[ConvLayer, ...]


_ARCH_KEYS = ("name", "description", "input", "in_channels", "layer")
_LAYER_KEYS = ("type", "name", "k", "s", "p", "d", "ceil_mode", "channels", "groups", "bias", "output_padding")


#: Other libraries' names for the layer keys, for "did you mean".
_KEY_ALIASES = {
    "kernel": "k", "kernel_size": "k", "stride": "s", "padding": "p", "pad": "p", "dilation": "d",
    "out_channels": "channels", "filters": "channels", "kind": "type", "ceil": "ceil_mode",
}


def _check_keys(table: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            names = [*allowed, *(a for a, k in _KEY_ALIASES.items() if k in allowed)]
            close = [_KEY_ALIASES.get(m, m) for m in get_close_matches(str(key), names, n=1)]
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ParameterError(f"{where}unknown key {key!r}; {hint}allowed: {', '.join(allowed)}")


def parse_arch(doc: dict, *, ndim: int = 2) -> ArchSpec:
    """An architecture from a parsed TOML document with ``[[layer]]`` tables.

    Top-level keys (all optional): ``name``, ``description``, ``input`` (N or
    ``[H, W]``), ``in_channels``. Each ``[[layer]]``: ``type``
    (conv|convtranspose|maxpool|avgpool, default conv), ``name``, ``k``, ``s``,
    ``d`` (ints or ``[h, w]``), ``p`` (an int, ``"same"``, ``"valid"``,
    ``"full"``, or ``[before, after]`` applied to every axis), ``ceil_mode``,
    ``channels`` (output channels), ``groups``, ``bias``, ``output_padding``.

    >>> spec = parse_arch({"input": 32, "layer": [{"k": 3, "channels": 8}, {"type": "maxpool", "k": 2}]})
    >>> [(l.name, l.kind, l.stride) for l in spec.layers]
    [('conv1', 'conv', (1, 1)), ('maxpool1', 'maxpool', (2, 2))]
    """
    _check_keys(doc, _ARCH_KEYS, "")
    tables = doc.get("layer")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ParameterError("no [[layer]] tables; each layer is a [[layer]] table with at least k = N")
    kinds = [_kind(str(t.get("type", "conv")), f"layer {i + 1}: ") for i, t in enumerate(tables)]
    layers = []
    for i, (table, kind, default) in enumerate(zip(tables, kinds, _numbered(kinds))):
        name = str(table.get("name", default))
        where = f"layer {i + 1} ({name}): "
        _check_keys(table, _LAYER_KEYS, where)
        if "k" not in table:
            raise ParameterError(f"{where}no kernel size; add k = N")
        for key in ("ceil_mode", "bias"):
            if key in table and not isinstance(table[key], bool):
                raise ParameterError(f"{where}{key} must be true or false, got {table[key]!r}")
        layers.append(make_layer(
            kind, name=name, ndim=ndim, where=where, k=table["k"], s=table.get("s"), p=table.get("p"),
            d=table.get("d"), channels=table.get("channels"), groups=table.get("groups", 1),
            bias=table.get("bias", True), ceil_mode=table.get("ceil_mode", False),
            output_padding=table.get("output_padding"),
        ))
    size = None if "input" not in doc else _axes("input", doc["input"], ndim)
    channels = None if "in_channels" not in doc else parse_count("in_channels", doc["in_channels"])
    title = doc.get("name")
    return ArchSpec(name=None if title is None else str(title), input=size, channels_in=channels,
                    layers=tuple(layers))


def parse_unit(value: str, *, ndim: int = 2) -> Pair:
    """``"ROW,COL"`` (or ``"N"`` in 1-D) as a 0-based unit index.

    >>> parse_unit("3,4")
    (3, 4)
    """
    parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
    if len(parts) != ndim:
        shape = "ROW,COL" if ndim == 2 else "N"
        raise ParameterError(f"--unit: {value!r} is not {shape} (0-based indices of an output unit)")
    nums = [_to_int("--unit", p) for p in parts]
    if any(n < 0 for n in nums):
        raise ParameterError(f"--unit: indices start at 0, got {value!r}")
    return (0, nums[0]) if ndim == 1 else (nums[0], nums[1])
