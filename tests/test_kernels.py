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


# --- the complete registry (issue 4) ------------------------------------------------------------

#: every kernel the issue asks for, with its matrix written out by hand (weights = matrix * scale)
ISSUE_KERNELS = {
    "identity": ([[0, 0, 0], [0, 1, 0], [0, 0, 0]], 1),
    "box-blur": ([[1] * 3] * 3, 1 / 9),
    "box-blur-5": ([[1] * 5] * 5, 1 / 25),
    "gaussian-blur": ([[1, 2, 1], [2, 4, 2], [1, 2, 1]], 1 / 16),
    "gaussian-blur-5": (np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]), 1 / 256),
    "sharpen": ([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], 1),
    "laplacian": ([[0, 1, 0], [1, -4, 1], [0, 1, 0]], 1),
    "laplacian-8": ([[1, 1, 1], [1, -8, 1], [1, 1, 1]], 1),
    "sobel-x": ([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], 1),
    "sobel-y": ([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], 1),
    "scharr-x": ([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], 1),
    "scharr-y": ([[-3, -10, -3], [0, 0, 0], [3, 10, 3]], 1),
    "prewitt-x": ([[-1, 0, 1]] * 3, 1),
    "prewitt-y": ([[-1, -1, -1], [0, 0, 0], [1, 1, 1]], 1),
    "roberts-x": ([[-1, 0], [0, 1]], 1),
    "roberts-y": ([[0, -1], [1, 0]], 1),
    "vertical-edge": ([[1, 0, -1]] * 3, 1),
    "horizontal-edge": ([[1, 1, 1], [0, 0, 0], [-1, -1, -1]], 1),
    "outline": ([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], 1),
    "emboss": ([[-2, -1, 0], [-1, 0, 1], [0, 1, 2]], 1),
}


@pytest.mark.parametrize("name", sorted(ISSUE_KERNELS))
def test_the_issue_list_is_in_the_registry_with_the_textbook_matrices(name):
    matrix, scale = ISSUE_KERNELS[name]
    np.testing.assert_allclose(builtin_registry().get(name).weights, np.asarray(matrix) * scale, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", ["unsharp", "log", "motion-blur"])
def test_the_other_issue_kernels_exist_in_their_sizes(name):
    assert builtin_registry().get(name).shape == {"unsharp": (5, 5), "log": (5, 5), "motion-blur": (9, 9)}[name]


def test_every_entry_loads_validated_with_a_description_map_and_tags():
    reg = builtin_registry()
    for k in reg.kernels.values():
        assert k.description and k.tags and k.map in ("clip", "abs", "offset", "rescale")
        assert np.all(np.isfinite(k.weights)) and k.weights.ndim == 2
        assert k.source == "built-in"
    for b in reg.banks.values():
        assert b.description and b.tags
        assert all(m is reg.kernels[m.name] for m in b.kernels)


def test_every_alias_of_a_bank_or_kernel_resolves():
    reg = builtin_registry()
    for alias, name in reg.aliases.items():
        assert reg.find(alias) is (reg.kernels.get(name) or reg.banks[name])


def test_imagemagick_names_are_aliases_only_where_the_matrix_is_the_same():
    reg = builtin_registry()
    # ImageMagick's Laplacian:0 and Laplacian:15, typed from MagickCore/morphology.c
    np.testing.assert_array_equal(resolve_kernel("Laplacian:0").weights, [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(
        resolve_kernel("laplacian:15").weights,
        [[0, 0, -1, 0, 0], [0, -1, -2, -1, 0], [-1, -2, 16, -2, -1], [0, -1, -2, -1, 0], [0, 0, -1, 0, 0]],
    )
    assert resolve_kernel("laplacian:19").shape == (9, 9) and resolve_kernel("laplacian:19").weights[4, 4] == 40
    # ImageMagick's Sobel is [1 0 -1; 2 0 -2; 1 0 -1]: the negative of sobel-x, so no alias points there
    im_sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    np.testing.assert_array_equal(reg.get("sobel-x").weights, -im_sobel)
    for alias, name in reg.aliases.items():
        target = reg.kernels.get(name)
        if target is not None and target.shape == (3, 3):
            assert not np.array_equal(target.weights, im_sobel), alias
    # and 'sobel' means the bank, not ImageMagick's kernel
    assert "sobel" in reg.banks and reg.get("sobel") is None
    # Unity is ImageMagick's 1x1 identity: its own entry, not an alias of the 3x3 identity
    assert reg.get("unity").shape == (1, 1) and "unity" not in reg.aliases


def test_builtin_banks_combine_the_documented_members():
    reg = builtin_registry()
    expected = {"sobel": ("sobel-x", "sobel-y"), "scharr": ("scharr-x", "scharr-y"),
                "prewitt": ("prewitt-x", "prewitt-y"), "roberts": ("roberts-x", "roberts-y")}
    assert {n: b.member_names for n, b in reg.banks.items()} == expected
    assert all(b.combine == "magnitude" for b in reg.banks.values())


# --- specs ------------------------------------------------------------------------------------


def test_resolve_spec_kinds():
    from convcli.banks import Bank
    from convcli.kernels import Kernel, resolve_spec

    assert isinstance(resolve_spec("sobel"), Bank)
    assert resolve_spec("sobel:max").combine == "max" and resolve_spec("sobel:max").name == "sobel-max"
    assert resolve_spec("sobel:combine=stack").combine == "stack"
    assert resolve_spec("sobel:magnitude") is builtin_registry().banks["sobel"]
    g = resolve_spec("gaussian:sigma=2")
    assert isinstance(g, Kernel) and g.name == "gaussian-sigma=2" and g.spec == "gaussian:sigma=2"
    assert resolve_spec("GAUSSIAN:2").spec == "gaussian:sigma=2"
    assert resolve_spec("box:7").shape == (7, 7)
    # a bare name: the registry first (box is box-blur's alias), then a parametric kernel with defaults
    assert resolve_spec("box") is builtin_registry().get("box-blur")
    np.testing.assert_array_equal(resolve_spec("3x3: 1,0,-1 2,0,-2 1,0,-1").weights, [[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    with pytest.raises(KernelError, match="is a bank of 2 kernels"):
        resolve_kernel("sobel")


@pytest.mark.parametrize(
    "spec,message",
    [
        ("laplacian:1", "fixed kernel and takes no parameters"),
        ("gausian:sigma=1", "did you mean 'gaussian'"),
        ("sobel:bogus", "combine 'bogus' is not one of magnitude, max, sum, stack"),
        ("sobel:max,sum", "takes one option"),
        ("sobel:colour=max", "unknown option 'colour'"),
        ("dog", "dog needs sigma1"),
        ("motion", "motion needs length"),
        ("[[[1, 2]]]", "a kernel is 2-D"),
        ("   ", "empty spec"),
    ],
)
def test_resolve_spec_errors(spec, message):
    from convcli.kernels import resolve_spec

    with pytest.raises(KernelError, match=message):
        resolve_spec(spec)


# --- scale, offset, normalize -------------------------------------------------------------------


def test_adjust_scale_offset_normalize():
    from convcli.kernels import adjust

    k = resolve_kernel("1 2 1; 2 4 2; 1 2 1")
    scaled = adjust(k, scale="1/16")
    assert scaled.scale_text == "1/16"
    np.testing.assert_array_equal(scaled.weights, builtin_registry().get("gaussian-blur").weights)
    normalised = adjust(k, normalize=True)
    np.testing.assert_array_equal(normalised.weights, scaled.weights)
    # normalize first, then scale: sums to the scale
    both = adjust(k, normalize=True, scale=2)
    assert both.weights.sum() == pytest.approx(2.0) and both.scale_text == "1/8"
    # scale multiplies the registry's own scale
    assert adjust(builtin_registry().get("box-blur"), scale="2").scale_text == "2/9"
    assert adjust(builtin_registry().get("box-blur"), normalize=True).scale_text == "1/9"
    shifted = adjust(k, offset=128.0)
    assert shifted.offset == 128.0 and shifted.scale_text == "1"
    assert adjust(k) is k


@pytest.mark.parametrize("name", ["sobel-x", "laplacian", "emboss", "log"])
def test_normalizing_a_zero_sum_kernel_is_an_error_that_says_why(name):
    from convcli.kernels import adjust

    with pytest.raises(KernelError, match=r"sums to 0 \(its positive and negative weights cancel"):
        adjust(builtin_registry().get(name), normalize=True)


def test_adjusting_a_bank_adjusts_each_member_and_offsets_the_combined_map():
    from convcli.kernels import adjust, resolve_spec

    bank = adjust(resolve_spec("sobel"), scale="1/8", offset=5.0)
    assert [k.scale_text for k in bank.kernels] == ["1/8", "1/8"] and bank.offset == 5.0
    assert all(k.offset == 0 for k in bank.kernels)
    with pytest.raises(KernelError, match="sums to 0"):
        adjust(resolve_spec("sobel"), normalize=True)


@pytest.mark.parametrize("scale", ["0", "0/5", "nan", "x"])
def test_bad_scales(scale):
    from convcli.kernels import adjust

    with pytest.raises(KernelError):
        adjust(resolve_kernel("1 2 1"), scale=scale)


# --- rank and factors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,col,row",
    [
        ("sobel-x", [1, 2, 1], [-1, 0, 1]),
        ("sobel-y", [-1, 0, 1], [1, 2, 1]),
        ("prewitt-x", [1, 1, 1], [-1, 0, 1]),
        ("gaussian-blur", [0.25, 0.5, 0.25], [0.25, 0.5, 0.25]),
        ("box-blur-5", [0.2] * 5, [0.2] * 5),
    ],
)
def test_rank1_factors_by_hand(name, col, row):
    from convcli.kernels import rank1_factors

    c, r = rank1_factors(builtin_registry().get(name).weights)
    np.testing.assert_allclose(c, col, atol=1e-15)
    np.testing.assert_allclose(r, row, atol=1e-15)


def test_rank1_factors_reconstruct_and_refuse_rank_2(rng):
    from convcli.kernels import matrix_rank, rank1_factors

    for _ in range(20):
        m = np.outer(rng.standard_normal(5), rng.standard_normal(7))
        c, r = rank1_factors(m)
        np.testing.assert_allclose(np.outer(c, r), m, rtol=1e-12, atol=1e-12)
    assert rank1_factors(builtin_registry().get("laplacian").weights) is None
    assert matrix_rank(builtin_registry().get("laplacian").weights) == 2
    assert rank1_factors(np.zeros((3, 3))) is None


# --- user registries ----------------------------------------------------------------------------


USER = """
[kernels.sobel-x]
description = "my sobel-x, scaled"
matrix = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
scale = "1/8"

[kernels.ridge]
description = "a ridge detector"
matrix = [[-1, 2, -1]]
aliases = ["box"]

[banks.both]
description = "ridge and its transpose"
kernels = ["ridge", "1 2 3"]
combine = "sum"
"""


def test_a_user_registry_merges_over_the_builtin_one_with_one_note_per_replacement():
    base = builtin_registry()
    reg = load_registry(USER, source="mine.toml", base=base)
    assert reg.get("sobel-x").scale_text == "1/8" and reg.get("sobel-x").source == "mine.toml"
    assert reg.get("box").name == "ridge"          # the user's alias wins over the built-in alias
    assert reg.get("box-blur") is base.get("box-blur")
    assert reg.get("sobel-y") is base.get("sobel-y")
    assert reg.banks["both"].member_names == ("ridge", "custom")
    assert reg.banks["sobel"] is base.banks["sobel"]
    assert len(reg.notes) == 2
    assert "kernel 'sobel-x' from mine.toml replaces the built-in kernel 'sobel-x'" in reg.notes
    assert any("'box'" in n and "alias of 'box-blur'" in n for n in reg.notes)
    # the built-in registry itself is untouched
    assert base.get("sobel-x").scale_text == "1" and base.notes == ()


def test_registry_files_merge_in_order(tmp_path):
    from convcli.kernels import load_registry_files

    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("[kernels.mine]\ndescription='first'\nmatrix=[[1]]\n")
    b.write_text("[kernels.mine]\ndescription='second'\nmatrix=[[2]]\n")
    reg = load_registry_files([a, b])
    assert reg.get("mine").description == "second"
    assert reg.notes == (f"kernel 'mine' from {b} replaces the {a} kernel 'mine'",)
    with pytest.raises(KernelError, match="does not exist"):
        load_registry_files([tmp_path / "nope.toml"])


@pytest.mark.parametrize(
    "body,message",
    [
        ("[banks.b]\ndescription='x'\nkernels=['sobel-x']\n", "at least two"),
        ("[banks.b]\ndescription='x'\nkernels=['sobel-x', 'roberts-x']\n", "must share one shape"),
        ("[banks.b]\ndescription='x'\nkernels=['sobel-x', 'nope']\n", "unknown kernel 'nope'"),
        ("[banks.b]\ndescription='x'\nkernels=['sobel-x', 'sobel']\n", "is itself a bank"),
        ("[banks.b]\ndescription='x'\nkernels=['sobel-x', 'sobel-y']\ncombine='mean'\n", "combine 'mean'"),
        ("[banks.b]\nkernels=['sobel-x', 'sobel-y']\n", "description"),
        ("[kernels.'my kernel']\ndescription='x'\nmatrix=[[1]]\n", "names start with a letter"),
        ("[kernels.a]\ndescription='x'\nmatrix=[[[1]]]\n", "2-D"),
        ("[kernels.a]\ndescription='x'\nmatrix=[['1/2']]\n", "must be numbers"),
        ("[kernels.a]\ndescription='x'\nmatrix=[[1]]\n[bank.b]\nx=1\n", "unknown top-level keys"),
        ("[kernels.a]\ndescription='x'\nmatrix=[[1]]\n[banks.a]\ndescription='y'\nkernels=['sobel-x','sobel-y']\n",
         "defined twice"),
    ],
)
def test_registry_validation_of_banks_and_names(body, message):
    with pytest.raises(KernelError, match=message):
        load_registry(body, source="t.toml", base=builtin_registry())


def test_kernels_are_validated_when_built():
    from convcli.kernels import Kernel

    for matrix, message in [([[1, 2], [3]], "rows of numbers"), (np.ones((2, 2, 2)), "3-D"),
                            (np.zeros((0, 3)), "empty"), ([[1, np.nan]], "NaN")]:
        with pytest.raises(KernelError, match=message):
            Kernel("k", matrix)
    with pytest.raises(KernelError, match="scale"):
        Kernel("k", [[1]], scale=0.0)
    with pytest.raises(KernelError, match="map"):
        Kernel("k", [[1]], map="glow")
