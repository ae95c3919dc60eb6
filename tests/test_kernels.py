"""The kernel registry, inline matrices and kernel files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from convcli.errors import KernelError
from convcli.kernels import builtin_registry, load_registry, parse_matrix, parse_number, resolve_kernel

REQUIRED = ["identity", "box-blur", "gaussian-blur", "gaussian-blur-5", "sharpen", "laplacian",
            "sobel-x", "sobel-y", "emboss"]


def test_required_kernels_exist_with_descriptions():
    reg = builtin_registry()
    for name in REQUIRED:
        k = reg.get(name)
        assert k is not None, name
        assert k.description
    assert all(k.description.strip() for k in reg.kernels.values())


def test_every_alias_resolves_to_its_kernel():
    reg = builtin_registry()
    for alias, name in reg.aliases.items():
        assert reg.get(alias) is reg.kernels[name]
        assert resolve_kernel(alias) is reg.kernels[name]


def test_sobel_x_sign_convention():
    sobel_x = builtin_registry().get("sobel-x")
    np.testing.assert_array_equal(sobel_x.weights, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    # positive where brightness rises to the right, under cross-correlation
    from convcli.engine import correlate

    ramp = np.tile(np.arange(8.0), (8, 1))
    assert np.all(correlate(ramp, sobel_x.weights, padding="valid") > 0)
    down = ramp.T
    assert np.all(correlate(down, builtin_registry().get("sobel-y").weights, padding="valid") > 0)


@pytest.mark.parametrize("name", ["box-blur", "box-blur-5", "gaussian-blur", "gaussian-blur-5", "sharpen",
                                  "unsharp", "identity", "motion-blur"])
def test_smoothing_and_sharpening_kernels_sum_to_one(name):
    assert builtin_registry().get(name).weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["laplacian", "laplacian-8", "log", "sobel-x", "sobel-y", "scharr-x",
                                  "prewitt-y", "roberts-x", "roberts-y", "vertical-edge", "emboss", "outline"])
def test_derivative_kernels_sum_to_zero(name):
    assert builtin_registry().get(name).weights.sum() == pytest.approx(0.0)


@pytest.mark.parametrize("name,variance,atol", [("gaussian-blur", 0.5, 0.07), ("gaussian-blur-5", 1.0, 0.025)])
def test_binomial_gaussians_have_the_documented_variance(name, variance, atol):
    # a binomial row [1 2 1]/4 or [1 4 6 4 1]/16 has variance n/4; the 2-D kernel is separable
    g = builtin_registry().get(name).weights
    n = g.shape[0]
    offsets = np.arange(n) - n // 2
    rows = g.sum(axis=1)
    assert np.linalg.matrix_rank(g) == 1
    assert (rows * offsets**2).sum() == pytest.approx(variance)
    assert (g.sum(axis=0) * offsets**2).sum() == pytest.approx(variance)
    # and it approximates scipy's sampled Gaussian of that sigma (a box blur would be 0.2 off)
    impulse = np.zeros((n, n))
    impulse[n // 2, n // 2] = 1
    reference = ndi.gaussian_filter(impulse, sigma=variance**0.5, mode="constant", truncate=10)
    np.testing.assert_allclose(g, reference, atol=atol)


def test_registry_matrices_are_read_only():
    k = builtin_registry().get("sobel-x")
    with pytest.raises(ValueError):
        k.weights[0, 0] = 5


@pytest.mark.parametrize(
    "text,expected",
    [
        ("1 0 -1; 2 0 -2; 1 0 -1", [[1, 0, -1], [2, 0, -2], [1, 0, -1]]),
        ("1,0,-1;2,0,-2", [[1, 0, -1], [2, 0, -2]]),
        ("1/16 2/16; 2/16 4/16", [[1 / 16, 2 / 16], [2 / 16, 4 / 16]]),
        ("[[1, 0], [0, -1]]", [[1, 0], [0, -1]]),
        ("[2, -1, 1]", [[2, -1, 1]]),
        ("1 2 3;", [[1, 2, 3]]),
        ("1e-1 -.5", [[0.1, -0.5]]),
        ("7", [[7]]),
    ],
)
def test_parse_matrix(text, expected):
    np.testing.assert_allclose(parse_matrix(text), expected)


@pytest.mark.parametrize(
    "text,message",
    [
        ("1 2; 3", "ragged"),
        ("", "empty"),
        ("1 nan", "NaN"),
        ("1 inf", "NaN and infinite"),
        ("1 x", "not a number"),
        ("1/0 1", "divides by zero"),
        ("[[1, 2], [3]", "unbalanced"),
        ("1 2;; 3 4", "row 2 is empty"),
    ],
)
def test_parse_matrix_errors(text, message):
    with pytest.raises(KernelError, match=message):
        parse_matrix(text)


def test_parse_number():
    assert parse_number("1/16") == 0.0625
    assert parse_number("-3") == -3.0


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KernelError, match="did you mean 'sobel-x'"):
        resolve_kernel("sobelx")
    with pytest.raises(KernelError, match="unknown kernel 'zzz'"):
        resolve_kernel("zzz")


def test_inline_and_file_kernels(tmp_path):
    k = resolve_kernel("1 2 1")
    assert k.name == "custom" and k.shape == (1, 3) and k.source == "inline"
    txt = tmp_path / "edge.txt"
    txt.write_text("# a comment\n1 0 -1\n2 0 -2  # trailing\n1 0 -1\n")
    f = resolve_kernel(f"@{txt}")
    assert f.name == "edge"
    np.testing.assert_array_equal(f.weights, [[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    npy = tmp_path / "k.npy"
    np.save(npy, np.array([[0.5, 0.5]]))
    np.testing.assert_array_equal(resolve_kernel(f"@{npy}").weights, [[0.5, 0.5]])
    csv = tmp_path / "k.csv"
    csv.write_text("1,2\n3,4\n")
    np.testing.assert_array_equal(resolve_kernel(f"@{csv}").weights, [[1, 2], [3, 4]])
    with pytest.raises(KernelError, match="does not exist"):
        resolve_kernel(f"@{tmp_path / 'missing.txt'}")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.ones((2, 2, 2)))
    with pytest.raises(KernelError, match="2-D"):
        resolve_kernel(f"@{bad}")


def _registry(body: str):
    return load_registry(body, source="test.toml")


@pytest.mark.parametrize(
    "body,message",
    [
        ("[kernels.a]\nmatrix=[[1]]\n", "description"),
        ("[kernels.a]\ndescription='x'\nmatrix=[[1,2],[3]]\n", "ragged"),
        ("[kernels.a]\ndescription='x'\nmatrix=[[1]]\nmap='glow'\n", "map 'glow'"),
        ("[kernels.a]\ndescription='x'\nmatrix=[[1]]\nscale='1/0'\n", "divides by zero"),
        ("[kernels.a]\ndescription='x'\nmatrix=[[1]]\ncolour=1\n", "unknown keys"),
        ("[kernels.a]\ndescription='x'\nmatrix=[[1]]\naliases=['b']\n[kernels.b]\ndescription='y'\nmatrix=[[2]]\n",
         "already a kernel"),
        ("nonsense = [", "not valid TOML"),
        ("x = 1", "no [kernels.NAME]"),
    ],
)
def test_registry_validation(body, message):
    with pytest.raises(KernelError, match=message.replace("[", r"\[")):
        _registry(body)


def test_registry_scale_is_applied_to_weights():
    reg = _registry("[kernels.b]\ndescription='blur'\nmatrix=[[1,2,1]]\nscale='1/4'\noffset=3\n")
    k = reg.get("b")
    np.testing.assert_array_equal(k.weights, [[0.25, 0.5, 0.25]])
    np.testing.assert_array_equal(k.matrix, [[1, 2, 1]])
    assert k.offset == 3 and k.scale_text == "1/4"
