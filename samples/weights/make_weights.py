#!/usr/bin/env python3
"""Make the sample layer weights in this folder (deterministic: no random numbers).

    python3 samples/weights/make_weights.py        # rewrites rgb8.npy, rgb8_bias.npy, layers.npz

``rgb8.npy``: a hand-made first layer, 8 filters of 3x3 over RGB in PyTorch's layout
(C_out, C_in, kh, kw) = (8, 3, 3, 3), float32, meant for input on 0..1 (``--input-scale 1/255``).
``L`` is the luminance weighting (0.299, 0.587, 0.114) of the R, G and B inputs.

====  ==============  ==========================================================
 #    name            weights
====  ==============  ==========================================================
 0    brightness      3x3 mean of the luminance (bias -0.5: mid-grey gives 0)
 1    edge-x          Sobel x of the luminance, / 4 (dark to light rightwards > 0)
 2    edge-y          Sobel y of the luminance, / 4 (dark to light downwards > 0)
 3    laplacian       4-neighbour Laplacian of the luminance (spots and lines)
 4    red-green       binomial 3x3 blur of R - G (red > 0, green < 0)
 5    blue-yellow     binomial 3x3 blur of B - (R + G) / 2 (blue > 0, yellow < 0)
 6    diagonal        luminance gradient towards the bottom right, / 4
 7    anti-diagonal   luminance gradient towards the bottom left, / 4
====  ==============  ==========================================================

``rgb8_bias.npy``: the 8 biases (-0.5 for the brightness filter, 0 for the others).

``layers.npz``: the same filters as a PyTorch-style state dict (``conv1.weight``,
``conv1.bias``), plus ``blur.weight`` (3, 1, 5, 5): the 5x5 binomial blur
(``gaussian-blur-5``) once per channel, a depthwise layer for ``--groups 3``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LUMA = np.array([0.299, 0.587, 0.114])


def rgb8() -> tuple[np.ndarray, np.ndarray]:
    """The (8, 3, 3, 3) weights and (8,) biases described above, float32."""
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    binomial = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    diagonal = np.array([[-2, -1, 0], [-1, 0, 1], [0, 1, 2]], dtype=np.float64)
    laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)

    def luma(k: np.ndarray) -> np.ndarray:
        return LUMA[:, None, None] * k[None]

    def colour(mix: list[float]) -> np.ndarray:
        return np.array(mix)[:, None, None] * binomial[None]

    w = np.stack([
        luma(np.full((3, 3), 1 / 9)),
        luma(sobel_x / 4),
        luma(sobel_x.T / 4),
        luma(laplacian),
        colour([1.0, -1.0, 0.0]),
        colour([-0.5, -0.5, 1.0]),
        luma(diagonal / 4),
        luma(diagonal[:, ::-1] / 4),
    ])
    b = np.array([-0.5, 0, 0, 0, 0, 0, 0, 0])
    return w.astype(np.float32), b.astype(np.float32)


def blur() -> np.ndarray:
    """(3, 1, 5, 5): the 5x5 binomial blur for each of 3 channels, float32."""
    row = np.array([1, 4, 6, 4, 1]) / 16.0
    return np.repeat(np.outer(row, row)[None, None], 3, axis=0).astype(np.float32)


def main() -> None:
    w, b = rgb8()
    np.save(HERE / "rgb8.npy", w)
    np.save(HERE / "rgb8_bias.npy", b)
    np.savez(HERE / "layers.npz", **{"conv1.weight": w, "conv1.bias": b, "blur.weight": blur()})


if __name__ == "__main__":
    main()
