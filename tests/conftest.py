from __future__ import annotations

import os
import sys
from pathlib import Path

# The command line runs BLAS on one thread (convcli.cli.main sets this before NumPy loads),
# and the engine then runs its matrix products on its own threads: test the same way.
if "numpy" not in sys.modules:
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
PHOTOS = ["astronaut.png", "coffee.jpg", "chelsea.jpg", "camera.png", "camera16.png"]

#: our canonical border mode -> (scipy.ndimage mode, cval)
SCIPY_MODES = {
    "zero": ("constant", 0.0),
    "constant=7.5": ("constant", 7.5),
    "replicate": ("nearest", 0.0),
    "reflect": ("reflect", 0.0),
    "reflect101": ("mirror", 0.0),
    "wrap": ("grid-wrap", 0.0),
}


def read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img)


def load_photo(name: str) -> np.ndarray:
    return read_image(SAMPLES / name)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return {name: load_photo(name) for name in PHOTOS}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


def ndi_correlate_same(image: np.ndarray, kernel: np.ndarray, border: str) -> np.ndarray:
    """Independent oracle: scipy.ndimage.correlate, same-size output, per channel.

    For an even kernel side, ndimage centres the kernel at k//2 while convcli's
    'same' puts the odd padding pixel after (anchor (k-1)//2): origin -1 moves it.
    """
    import scipy.ndimage as ndi

    mode, cval = SCIPY_MODES[border]
    origin = [-1 if n % 2 == 0 else 0 for n in kernel.shape]
    x = image.astype(np.float64)
    if x.ndim == 2:
        return ndi.correlate(x, kernel, mode=mode, cval=cval, origin=origin)
    return np.stack(
        [ndi.correlate(x[..., c], kernel, mode=mode, cval=cval, origin=origin) for c in range(x.shape[2])],
        axis=2,
    )


def assert_close(actual: np.ndarray, expected: np.ndarray, rel: float = 1e-5) -> None:
    """Equal to ``rel`` of the expected output's range (float32 rounding)."""
    assert actual.shape == expected.shape
    span = float(np.max(np.abs(expected))) or 1.0
    err = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    assert err <= rel * span, f"max error {err} > {rel} * {span}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite the expected text of golden tests (tests/data/golden/) from the current output; "
        "check every changed file by eye before committing it.",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
