"""Output sizes and parameter counts against PyTorch's own layers.

``CASES`` holds values recorded from torch 2.13.0 (CPU build): the output size
of ``module(torch.zeros(1, C_in, H, W))`` and ``sum(p.numel() for p in
module.parameters())``. ``test_recorded_torch_values`` checks convcli against
them and always runs; ``test_against_torch`` re-derives every one of them from
torch itself when torch is installed (``pip install -e '.[torch]'``).
"""

from __future__ import annotations

import warnings

import pytest

from convcli.errors import ConvcliError, ShapeError
from convcli.geometry import make_layer, network_geometry, parse_arch

from .conftest import SAMPLES

# (layer type, input (H, W), k, s, p, d, ceil_mode, output_padding, C_in, C_out, groups, bias)
#   -> (output (H, W), parameters), recorded from torch 2.13.0
CASES = [
    (("conv", (224, 224), 7, 2, 3, 1, False, 0, 3, 64, 1, False), ((112, 112), 9408)),
    (("conv", (32, 32), 3, 1, 1, 1, False, 0, 3, 64, 1, True), ((32, 32), 1792)),
    (("conv", (128, 128), 5, 2, 2, 1, False, 0, 3, 32, 1, True), ((64, 64), 2432)),
    (("conv", (20, 17), (3, 5), (2, 1), (1, 0), (1, 2), False, 0, 4, 8, 2, True), ((10, 9), 248)),
    (("conv", (10, 10), 4, 1, "same", 1, False, 0, 2, 2, 1, True), ((10, 10), 66)),
    (("conv", (9, 8), (4, 3), 1, "same", (2, 3), False, 0, 6, 6, 3, True), ((9, 8), 150)),
    (("conv", (7, 7), 3, 1, "valid", 1, False, 0, 1, 1, 1, True), ((5, 5), 10)),
    (("conv", (15, 15), 3, 3, 0, 2, False, 0, 8, 16, 8, False), ((4, 4), 144)),
    (("maxpool", (112, 112), 3, 2, 1, 1, False, 0, 64, 64, 1, True), ((56, 56), 0)),
    (("maxpool", (5, 5), 2, 2, 1, 1, True, 0, 1, 1, 1, True), ((3, 3), 0)),
    (("maxpool", (4, 4), 2, 2, 1, 1, True, 0, 1, 1, 1, True), ((3, 3), 0)),
    (("maxpool", (56, 56), 3, 2, 0, 1, True, 0, 1, 1, 1, True), ((28, 28), 0)),
    (("maxpool", (2, 2), 3, 2, 0, 1, True, 0, 1, 1, 1, True), ((1, 1), 0)),
    (("maxpool", (13, 13), 3, 2, 1, 2, True, 0, 1, 1, 1, True), ((6, 6), 0)),
    (("maxpool", (11, 11), 2, 3, 1, 1, True, 0, 1, 1, 1, True), ((4, 4), 0)),
    # ceil gives 5; the fifth window would start at 4*3 = 12 = 10 + 2, past the input: 4
    (("maxpool", (10, 10), 4, 3, 2, 1, True, 0, 1, 1, 1, True), ((4, 4), 0)),
    (("avgpool", (6, 6), 3, 2, 1, 1, True, 0, 1, 1, 1, True), ((4, 4), 0)),
    (("avgpool", (7, 7), 2, 2, 0, 1, True, 0, 1, 1, 1, True), ((4, 4), 0)),
    (("avgpool", (7, 7), 2, 2, 0, 1, False, 0, 1, 1, 1, True), ((3, 3), 0)),
    (("avgpool", (10, 9), (3, 2), (3, 1), (1, 1), 1, True, 0, 1, 1, 1, True), ((4, 10), 0)),
    (("convtranspose", (16, 16), 3, 2, 1, 1, False, 1, 8, 4, 1, True), ((32, 32), 292)),
    (("convtranspose", (7, 7), 4, 2, 1, 1, False, 0, 4, 4, 2, False), ((14, 14), 128)),
    (("convtranspose", (5, 6), (3, 2), (3, 2), (0, 1), 1, False, (2, 1), 3, 6, 3, True), ((17, 11), 42)),
    # output_padding 2 >= stride 2 is allowed because it is below the dilation 3
    (("convtranspose", (10, 10), 3, 2, 0, 3, False, 2, 1, 1, 1, True), ((27, 27), 10)),
    (("convtranspose", (1, 1), 1, 1, 0, 1, False, 0, 2, 5, 1, True), ((1, 1), 15)),
]

# Layers torch refuses (recorded from torch 2.13.0 as well): convcli must refuse them too.
# (layer type, input, k, s, p, d, ceil_mode, output_padding, C_in, C_out, groups, bias)
REFUSED = [
    ("maxpool", (10, 10), 3, 3, 2, 1, False, 0, 1, 1, 1, True),   # pad 2 > k_eff/2 = 1.5
    ("maxpool", (10, 10), 3, 1, 2, 2, False, 0, 1, 1, 1, True),   # pad 2 <= k_eff/2 = 2.5 but > k/2 = 1.5
    ("avgpool", (10, 10), 2, 2, 2, 1, False, 0, 1, 1, 1, True),   # pad 2 > 1
    ("maxpool", (1, 1), 3, 2, 0, 1, True, 0, 1, 1, 1, True),      # no window starts in the input
    ("conv", (3, 3), 5, 1, 0, 1, False, 0, 1, 1, 1, True),        # kernel larger than the input
    ("convtranspose", (8, 8), 3, 2, 1, 1, False, 2, 1, 1, 1, True),  # output_padding 2 >= stride and dilation
    ("convtranspose", (8, 8), 3, 1, 1, 1, False, 1, 1, 1, 1, True),  # output_padding 1 >= stride 1 and dilation 1
    ("conv", (8, 8), 3, 1, 1, 1, False, 0, 4, 6, 3, True),        # groups 3 does not divide 4 input channels
]


def _spec(value):
    """A torch-style int / per-axis tuple as convcli takes it."""
    return list(value) if isinstance(value, tuple) else value


def _pad(value):
    return f"{value[0]}x{value[1]}" if isinstance(value, tuple) else value


def _convcli(case):
    kind, n, k, s, p, d, ceil, op, cin, cout, groups, bias = case
    layer = make_layer(
        kind, k=_spec(k), s=_spec(s), p=_pad(p), d=_spec(d), ceil_mode=ceil, output_padding=_spec(op),
        channels=None if kind.endswith("pool") else cout, groups=groups, bias=bias,
    )
    return network_geometry(n, [layer], channels_in=cin).layers[0]


def _torch_module(torch, case):
    nn = torch.nn
    kind, n, k, s, p, d, ceil, op, cin, cout, groups, bias = case
    if kind == "conv":
        return nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=groups, bias=bias)
    if kind == "maxpool":
        return nn.MaxPool2d(k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    if kind == "avgpool":
        return nn.AvgPool2d(k, stride=s, padding=p, ceil_mode=ceil)
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op, groups=groups,
                              bias=bias, dilation=d)


def _ids(cases):
    return [f"{c[0][0] if isinstance(c[0], tuple) else c[0]}-{i}" for i, c in enumerate(cases)]


@pytest.mark.parametrize("case,expected", CASES, ids=_ids(CASES))
def test_recorded_torch_values(case, expected):
    out, params = expected
    g = _convcli(case)
    assert g.output == out
    assert g.params == params


@pytest.mark.parametrize("case", REFUSED, ids=_ids(REFUSED))
def test_what_torch_refuses_is_refused(case):
    with pytest.raises(ConvcliError):
        _convcli(case)


@pytest.mark.parametrize("case,expected", CASES, ids=_ids(CASES))
def test_against_torch(case, expected):
    torch = pytest.importorskip("torch")
    module = _torch_module(torch, case)
    cin, n = case[8], case[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = tuple(module(torch.zeros(1, cin, *n)).shape[2:])
    assert (out, sum(p.numel() for p in module.parameters())) == expected
    assert _convcli(case).output == out


@pytest.mark.parametrize("case", REFUSED, ids=_ids(REFUSED))
def test_torch_refuses_them_too(case):
    torch = pytest.importorskip("torch")
    with pytest.raises((RuntimeError, ValueError)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _torch_module(torch, case)(torch.zeros(1, case[8], *case[1]))


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "resnet50"])
def test_arch_files_layer_by_layer_against_torch(name):
    """Every layer of the shipped architectures, built as the torch module it stands for."""
    torch = pytest.importorskip("torch")
    import tomllib

    nn = torch.nn
    spec = parse_arch(tomllib.loads((SAMPLES / "arch" / f"{name}.toml").read_text()))
    assert spec.input is not None and spec.channels_in is not None
    net = network_geometry(spec.input, spec.layers, channels_in=spec.channels_in)
    x = torch.zeros(1, spec.channels_in, *spec.input)
    with torch.no_grad():
        for g in net.layers:
            layer = g.layer
            pads = [b for b, a in g.padding]
            assert all(b == a for b, a in g.padding)
            if layer.kind == "conv":
                module = nn.Conv2d(x.shape[1], g.channels_out, layer.kernel, stride=layer.stride,
                                   padding=pads, dilation=layer.dilation, groups=layer.groups, bias=layer.bias)
            elif layer.kind == "maxpool":
                module = nn.MaxPool2d(layer.kernel, stride=layer.stride, padding=pads, dilation=layer.dilation,
                                      ceil_mode=layer.ceil_mode)
            else:
                module = nn.AvgPool2d(layer.kernel, stride=layer.stride, padding=pads, ceil_mode=layer.ceil_mode)
            x = module(x)
            assert tuple(x.shape[1:]) == (g.channels_out, *g.output), layer.name
            assert sum(p.numel() for p in module.parameters()) == g.params, layer.name


def test_refusals_name_the_rule():
    with pytest.raises(ShapeError, match=r"k_eff/2 = 5/2 and k/2 = 3/2"):
        _convcli(REFUSED[1])
    with pytest.raises(ShapeError, match=r"output_padding 2 >= stride 2 and >= dilation 1"):
        _convcli(REFUSED[5])
