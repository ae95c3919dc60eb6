"""Reading images and arrays into NumPy, and writing them back.

Pixel values keep the file's own scale: 8-bit images give 0..255, 16-bit
images 0..65535. Colour channels and alpha are returned separately, so that
alpha can be kept unfiltered.

16-bit colour PNGs (RGB, RGBA, gray+alpha), which Pillow reads as 8 bits, are
read and written by :mod:`convcli.png16`, so 16 bits stay 16 bits. Multi-frame
files (GIF, TIFF, ``.npz`` archives) give one :class:`LoadedImage` per frame
through :func:`read_frames`.
"""

from __future__ import annotations

import io
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import ImageReadError, KernelError, OutputError, ParameterError

__all__ = [
    "IMAGE_FORMATS",
    "ARRAY_SUFFIXES",
    "LoadedImage",
    "read_input",
    "read_frames",
    "to_gray",
    "select_channels",
    "OUTPUT_FORMATS",
    "output_format",
    "format_for",
    "write_image",
    "write_npy",
    "write_npz",
    "encode_image",
]

#: suffix -> (Pillow format name, holds 16-bit gray, holds alpha)
IMAGE_FORMATS: dict[str, tuple[str, bool, bool]] = {
    ".png": ("PNG", True, True),
    ".tif": ("TIFF", True, True),
    ".tiff": ("TIFF", True, True),
    ".jpg": ("JPEG", False, False),
    ".jpeg": ("JPEG", False, False),
    ".bmp": ("BMP", False, False),
    ".webp": ("WEBP", False, True),
    ".gif": ("GIF", False, False),
}
ARRAY_SUFFIXES = (".npy", ".npz", ".txt", ".csv")

#: ``--format`` name -> (format, suffix, bits: 8, 16, 32 for float, None for "as the input")
OUTPUT_FORMATS: dict[str, tuple[str, str, int | None]] = {
    "png": ("PNG", ".png", None),
    "png8": ("PNG", ".png", 8),
    "png16": ("PNG", ".png", 16),
    "tiff": ("TIFF", ".tif", None),
    "tiff8": ("TIFF", ".tif", 8),
    "tiff16": ("TIFF", ".tif", 16),
    "tiff-float": ("TIFF", ".tif", 32),
    "jpeg": ("JPEG", ".jpg", 8),
    "webp": ("WEBP", ".webp", 8),
    "bmp": ("BMP", ".bmp", 8),
    "gif": ("GIF", ".gif", 8),
    "npy": ("NPY", ".npy", 32),
    "npz": ("NPZ", ".npz", 32),
}

#: ITU-R BT.601 luma weights, as Pillow's ``convert("L")`` uses them
GRAY_WEIGHTS = (0.299, 0.587, 0.114)

_SAVE_OPTIONS = {
    # zlib run-length strategy: on feature maps (long runs of equal values) it was both faster
    # and smaller than the default strategy at levels 1-6 (4000x3000 Sobel map: 1.1 s and 7.6 MB
    # against 4.4 s and 7.5 MB at Pillow's default level 6)
    "PNG": {"compress_level": 3, "compress_type": zlib.Z_RLE},
    "JPEG": {"quality": 95},
    "WEBP": {"quality": 95},
    "TIFF": {"compression": "tiff_adobe_deflate"},
}


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """An input, split into the channels to filter and an optional alpha channel."""

    data: np.ndarray
    alpha: np.ndarray | None
    #: Pillow mode as read ("RGB", "I;16", ...) or "array" for .npy/.txt input
    mode: str
    #: 8 or 16 for integer images; None for float images and arrays
    bits: int | None
    format: str
    path: str
    #: which frame of a multi-frame file ("0", "1", ... or an .npz key); None for single images
    frame: str | None = None

    @property
    def channel_names(self) -> tuple[str, ...]:
        """One letter per channel of ``data``: R, G, B for colour, L for gray, else 0, 1, ..."""
        n = self.channels
        if self.mode == "gray":
            return ("Y",)
        if self.mode != "array" and n == 3:
            return ("R", "G", "B")
        if self.mode != "array" and n == 1:
            return ("L",)
        return tuple(str(i) for i in range(n))

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape including alpha, as the file holds it."""
        h, w = self.data.shape[:2]
        c = (self.data.shape[2] if self.data.ndim == 3 else 1) + (self.alpha is not None)
        return (h, w) if c == 1 else (h, w, c)

    @property
    def channels(self) -> int:
        return self.data.shape[2] if self.data.ndim == 3 else 1


def _read_arrays(path: Path, data: bytes | None = None) -> list[LoadedImage]:
    """The arrays of an .npz archive (one frame each, in file order), or the one array of a file."""
    suffix = path.suffix.lower()
    source = io.BytesIO(data) if data is not None else path
    if suffix == ".npz" or (data is not None and data.startswith(b"PK")):
        try:
            with np.load(source, allow_pickle=False) as archive:
                arrays = [(key, archive[key]) for key in archive.files]
        except (OSError, ValueError, EOFError) as exc:
            raise ImageReadError(f"cannot read {str(path)!r} as a .npz archive ({exc})") from None
        arrays = [(k, a) for k, a in arrays if a.ndim >= 1]  # a report string is not a frame
        if not arrays:
            raise ImageReadError(f"{str(path)!r} holds no arrays")
        return [_check_array(path, a, "NPZ", key) for key, a in arrays]
    return [_read_array(path, data)]


def _read_array(path: Path, data: bytes | None = None) -> LoadedImage:
    suffix = path.suffix.lower()
    if suffix == ".npy" or data is not None:
        try:
            arr = np.load(io.BytesIO(data) if data is not None else path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ImageReadError(f"cannot read {str(path)!r} as a .npy array ({exc})") from None
        if not isinstance(arr, np.ndarray):
            raise ImageReadError(f"cannot read {str(path)!r} as a .npy array (it is an archive)")
    else:
        from .kernels import _read_matrix_file

        try:
            arr = _read_matrix_file(path)
        except KernelError as exc:
            raise ImageReadError(str(exc).replace("kernel file", "input")) from None
    return _check_array(path, arr, "NPY" if data is not None else suffix.lstrip(".").upper(), None)


def _check_array(path: Path, arr: np.ndarray, fmt: str, frame: str | None) -> LoadedImage:
    where = f"{str(path)!r}" + (f" (array {frame!r})" if frame is not None else "")
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ImageReadError(
            f"{where}: expected a 2-D (H, W) or 3-D (H, W, C) array, got shape {arr.shape}"
        )
    if arr.dtype.kind not in "biuf":
        raise ImageReadError(f"{where}: expected numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ImageReadError(
            f"{where} contains {bad} NaN or infinite values; replace them "
            "(for example with numpy.nan_to_num) before filtering"
        )
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    return LoadedImage(arr, None, "array", None, fmt, str(path), frame)


def _pixels(img) -> np.ndarray:  # noqa: ANN001 - PIL.Image.Image
    """``np.asarray(img)`` in one piece: Pillow packs its pixels in blocks of
    ``ImageFile.MAXBLOCK`` (64 KB) and joins them, a second copy; one block the size of the
    image halves the time (26 ms of 52 for 12 megapixels)."""
    from PIL import ImageFile

    old = ImageFile.MAXBLOCK
    ImageFile.MAXBLOCK = max(old, img.width * img.height * 8 + 1024)  # at most 8 bytes a pixel
    try:
        return np.asarray(img)
    finally:
        ImageFile.MAXBLOCK = old


def _from_pillow(img, path: Path, frame: str | None = None) -> LoadedImage:  # noqa: ANN001 - PIL.Image.Image
    mode = img.mode
    fmt = img.format or "?"
    bits: int | None = 8
    if mode == "1":
        img = img.convert("L")
    elif mode == "P" or mode == "PA":
        img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
    elif mode in ("La",):
        img = img.convert("LA")
    elif mode in ("RGBa", "RGBX"):
        img = img.convert("RGBA" if mode == "RGBa" else "RGB")
    elif mode.startswith("I;16"):
        bits = 16
    elif mode in ("I", "F"):
        bits = None
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    arr = _pixels(img)
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    if mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= 65535:
        # Pillow opens 16-bit PGM/PPM (and some TIFFs) as 32-bit "I": keep them 16-bit
        arr, bits = arr.astype(np.uint16), 16
    alpha = None
    if img.mode in ("LA", "RGBA"):
        alpha = np.ascontiguousarray(arr[..., -1])
        arr = arr[..., :-1]
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
    return LoadedImage(np.ascontiguousarray(arr), alpha, mode, bits, fmt, str(path), frame)


def read_input(path: str | Path, *, data: bytes | None = None, max_pixels: int | None = None) -> LoadedImage:
    """Read an image file (any format Pillow reads) or an array file (.npy, .npz, .txt, .csv).

    EXIF orientation is applied; multi-frame files give their first frame (see
    :func:`read_frames`). ``data`` gives the file's bytes instead (standard input):
    NumPy ``.npy``/``.npz`` bytes or any image format.
    """
    return read_frames(path, data=data, max_pixels=max_pixels, first_only=True)[0]


#: the EXIF tag holding the orientation (1-8)
_ORIENTATION = 0x0112


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W[, C]) array, as ``ImageOps.exif_transpose`` does."""
    if orientation == 2:
        arr = arr[:, ::-1]
    elif orientation == 3:
        arr = arr[::-1, ::-1]
    elif orientation == 4:
        arr = arr[::-1]
    elif orientation == 5:
        arr = arr.swapaxes(0, 1)
    elif orientation == 6:
        arr = np.rot90(arr, k=-1)
    elif orientation == 7:
        arr = arr[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        arr = np.rot90(arr, k=1)
    return np.ascontiguousarray(arr)


def _read_png16(raw: bytes, path: Path, limit: int) -> LoadedImage:
    from .png16 import PngError, read_png

    try:
        png = read_png(raw, max_pixels=limit)
    except PngError as exc:
        hint = "; if you trust the file, raise the limit with --max-pixels N" if "bomb" in str(exc) else ""
        raise ImageReadError(f"cannot read {str(path)!r}: {exc}{hint}") from None
    arr = _orient(png.data, png.orientation)
    alpha = None
    if png.mode.endswith("A"):
        alpha = np.ascontiguousarray(arr[..., -1])
        arr = arr[..., :-1]
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
    mode = {"L": "I;16", "LA": "LA;16", "RGB": "RGB;16", "RGBA": "RGBA;16"}[png.mode]
    return LoadedImage(np.ascontiguousarray(arr), alpha, mode, 16, "PNG", str(path))


def _wide_colour(img) -> str | None:  # noqa: ANN001 - PIL.Image.Image
    """For 16-bit RGB/RGBA (a TIFF, say), which Pillow narrows to 8 bits: the byte order of its
    samples as Pillow's raw modes name it ("B" or "L"); None for everything else."""
    if img.mode not in ("RGB", "RGBA") or not img.tile:
        return None
    modes = {t[3][0] if isinstance(t[3], tuple) else t[3] for t in img.tile}
    if len(modes) != 1:
        return None
    (rawmode,) = modes
    if not isinstance(rawmode, str) or rawmode not in (f"{img.mode};16{o}" for o in "NBL"):
        return None
    order = rawmode[-1]
    return ("L" if sys.byteorder == "little" else "B") if order == "N" else order


def _with_rawmode(tile, rawmode: str):  # noqa: ANN001, ANN202 - a Pillow tile descriptor
    args = (rawmode, *tile[3][1:]) if isinstance(tile[3], tuple) else rawmode
    return tile._replace(args=args) if hasattr(tile, "_replace") else (*tile[:3], args)


def _sixteen_bit_colour(source, index: int, order: str, img, path: Path, frame: str | None) -> LoadedImage:  # noqa: ANN001
    """Decode a 16-bit colour frame twice through Pillow: read in its own byte order each sample
    gives its high byte, read in the other its low byte."""
    from PIL import Image

    mode = img.mode
    halves = []
    for letter in (order, "B" if order == "L" else "L"):
        if hasattr(source, "seek"):
            source.seek(0)
        with Image.open(source) as again:
            if index:
                again.seek(index)
            again.tile = [_with_rawmode(t, f"{mode};16{letter}") for t in again.tile]
            halves.append(np.asarray(again).astype(np.uint16))
    arr = _orient((halves[0] << 8) | halves[1], int(img.getexif().get(_ORIENTATION, 1) or 1))
    alpha = None
    if mode == "RGBA":
        alpha = np.ascontiguousarray(arr[..., 3])
        arr = arr[..., :3]
    return LoadedImage(np.ascontiguousarray(arr), alpha, f"{mode};16", 16, img.format or "?", str(path), frame)


def read_frames(
    path: str | Path,
    *,
    data: bytes | None = None,
    max_pixels: int | None = None,
    first_only: bool = False,
) -> list[LoadedImage]:
    """Every frame of an input (GIF and TIFF pages, the arrays of an .npz), each a LoadedImage.

    ``max_pixels`` refuses images with more pixels (a decompression bomb guard); the
    default is Pillow's own hard limit, twice ``PIL.Image.MAX_IMAGE_PIXELS``.
    """
    path = Path(path)
    if data is None:
        if not path.exists():
            raise ImageReadError(f"{str(path)!r} does not exist")
        if path.is_dir():
            raise ImageReadError(f"{str(path)!r} is a folder, not an image")
        if path.suffix.lower() in ARRAY_SUFFIXES:
            frames = _read_arrays(path)
            return frames[:1] if first_only else frames
    elif data.startswith((b"\x93NUMPY", b"PK\x03\x04")):
        frames = _read_arrays(path, data)
        return frames[:1] if first_only else frames
    from PIL import Image, ImageOps, UnidentifiedImageError

    import warnings

    from .png16 import png_header

    default_limit = 2 * int(Image.MAX_IMAGE_PIXELS or 0) or None
    limit = max_pixels if max_pixels is not None else default_limit
    saved = Image.MAX_IMAGE_PIXELS
    try:
        head = data[:64] if data is not None else _head(path)
        header = png_header(head)
        if header is not None and header[2] == 16 and header[3] in (2, 4, 6):
            raw = data if data is not None else path.read_bytes()
            return [_read_png16(raw, path, limit or 2**62)]
        with warnings.catch_warnings():
            # the limit is checked here, from the header, before any pixel is decoded: Pillow's own
            # check (a warning at its limit, an error at twice it) would misstate --max-pixels
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if max_pixels is not None and default_limit is not None and max_pixels > default_limit:
                Image.MAX_IMAGE_PIXELS = None  # a raised limit: ours is the only check
            with Image.open(io.BytesIO(data) if data is not None else path) as img:
                width, height = img.size
                if limit is not None and width * height > limit:
                    raise ImageReadError(
                        f"cannot read {str(path)!r}: {width}x{height} = {width * height:,} pixels is above the "
                        f"limit of {limit:,} (a guard against decompression bombs); if you trust the file, "
                        f"raise it with --max-pixels N"
                    )
                count = 1 if first_only else int(getattr(img, "n_frames", 1) or 1)
                frames = []
                for index in range(count):
                    if count > 1:
                        img.seek(index)
                    order = _wide_colour(img)
                    if order is not None:
                        source = io.BytesIO(data) if data is not None else path
                        frames.append(_sixteen_bit_colour(source, index, order, img, path,
                                                          str(index) if count > 1 else None))
                        continue
                    img.load()
                    if img.getexif().get(_ORIENTATION, 1) in range(2, 9):
                        oriented = ImageOps.exif_transpose(img)
                    else:  # exif_transpose would return a copy: 40 ms for 12 megapixels
                        oriented = img.copy() if count > 1 else img
                    oriented.format = img.format
                    frames.append(_from_pillow(oriented, path, str(index) if count > 1 else None))
                return frames
    except PermissionError:
        raise ImageReadError(f"cannot read {str(path)!r}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageReadError(
            f"cannot read {str(path)!r}: not an image format Pillow recognises (or not an image)"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(
            f"cannot read {str(path)!r}: {exc} If you trust the file, raise the limit with --max-pixels N"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"cannot read {str(path)!r}: damaged or truncated image ({exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(64)
    except OSError:
        return b""  # Pillow then reports the problem


def to_gray(image: LoadedImage) -> LoadedImage:
    """Luminance ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, Pillow's ``convert("L")``),
    as float32, not rounded, in the image's own scale; alpha is kept. Gray images are returned as they are.

    >>> img = LoadedImage(np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8), None, "RGB", 8, "PNG", "x")
    >>> to_gray(img).data
    array([[76.245, 29.07 ]], dtype=float32)
    """
    if image.channels != 3:
        return image
    w = np.asarray(GRAY_WEIGHTS, dtype=np.float64)
    gray = (image.data.astype(np.float64) @ w).astype(np.float32)
    return LoadedImage(gray, image.alpha, "gray", image.bits, image.format, image.path, image.frame)


def select_channels(image: LoadedImage, wanted: tuple[str, ...]) -> tuple[int, ...]:
    """Indices of the channels named in ``wanted`` (letters R, G, B, L, Y or 0-based numbers)."""
    names = image.channel_names
    picked: list[int] = []
    for word in wanted:
        key = word.strip().upper()
        if key in names:
            index = names.index(key)
        elif key.isdigit() and int(key) < len(names):
            index = int(key)
        else:
            raise ParameterError(
                f"--channels: {word!r} is not a channel of {image.path} (it has {', '.join(names)}; "
                "alpha is set with --alpha)"
            )
        if index in picked:
            raise ParameterError(f"--channels: {word!r} is given twice")
        picked.append(index)
    return tuple(picked)


def format_for(path: str | Path) -> str:
    """``"NPY"``, ``"NPZ"`` or the Pillow format name for an output path, by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        return "NPY"
    if suffix == ".npz":
        return "NPZ"
    if suffix in IMAGE_FORMATS:
        return IMAGE_FORMATS[suffix][0]
    known = ", ".join([".npy", ".npz", *IMAGE_FORMATS])
    raise OutputError(f"output {str(path)!r}: unknown file type {suffix or '(none)'!r}; use one of {known}")


def format_name(name: str) -> str:
    """The canonical ``--format`` name (``jpg`` -> ``jpeg``, ``tif16`` -> ``tiff16``)."""
    key = name.strip().lower()
    key = {"jpg": "jpeg", "tif": "tiff", "tif8": "tiff8", "tif16": "tiff16", "tif-float": "tiff-float"}.get(key, key)
    if key not in OUTPUT_FORMATS:
        raise ParameterError(f"--format: unknown format {name!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    return key


def output_format(path: str | Path, name: str | None = None) -> tuple[str, int | None]:
    """The format and forced bit depth (8, 16, 32 for float, None: as the input) of an output.

    ``name`` is a ``--format`` name (png16, tiff-float, ...); without it the suffix decides.
    """
    if name is None:
        fmt = format_for(path)
        return fmt, 32 if fmt in ("NPY", "NPZ") else None
    key = format_name(name)
    fmt, _suffix, bits = OUTPUT_FORMATS[key]
    if str(path) != "-" and Path(path).suffix and format_for(path) != fmt:
        raise ParameterError(f"--format {name} does not match the output {str(path)!r}; name it {_suffix}")
    return fmt, bits


def _to_pillow(data: np.ndarray, alpha: np.ndarray | None):  # noqa: ANN202
    from PIL import Image

    channels = data.shape[2] if data.ndim == 3 else 1
    if data.dtype == np.uint16:
        if channels != 1 or alpha is not None:
            raise OutputError(
                "16-bit colour (or gray with alpha) can be written as PNG or TIFF only; write .png, .tif or .npy"
            )
        return Image.fromarray(data if data.ndim == 2 else data[..., 0])
    if data.dtype != np.uint8:
        raise OutputError(f"cannot write {data.dtype} pixels as an image")
    if channels not in (1, 3):
        raise OutputError(f"cannot write a {channels}-channel result as an image; write .npy instead")
    if alpha is not None:
        planes = data[..., np.newaxis] if data.ndim == 2 else data
        data = np.concatenate([planes, alpha[..., np.newaxis]], axis=2)
    return Image.fromarray(np.ascontiguousarray(data))  # L, LA, RGB or RGBA by shape


def _planes(data: np.ndarray, alpha: np.ndarray | None) -> list[np.ndarray]:
    planes = [data] if data.ndim == 2 else [data[..., c] for c in range(data.shape[2])]
    if alpha is not None:
        planes.append(alpha)
    return [np.ascontiguousarray(p) for p in planes]


def _tiff_pages(data: np.ndarray, alpha: np.ndarray | None) -> bytes:
    """One TIFF page per channel (then alpha): 16-bit colour and float maps, which Pillow
    writes only as single-channel pages."""
    from PIL import Image

    pages = []
    for plane in _planes(data, alpha):
        if plane.dtype == np.uint16:
            pages.append(Image.fromarray(plane))
        else:
            pages.append(Image.fromarray(plane.astype(np.float32)))
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=len(pages) > 1, append_images=pages[1:],
                  **_SAVE_OPTIONS["TIFF"])
    return buf.getvalue()


def encode_image(
    data: np.ndarray,
    alpha: np.ndarray | None,
    fmt: str,
    *,
    quality: int | None = None,
    compress_level: int | None = None,
    threads: int | None = None,
) -> bytes:
    """Encode pixels in ``fmt``; returns the file's bytes.

    uint8 goes to every format; uint16 (gray or colour, with or without alpha) to PNG and
    TIFF; float32 (a raw map) to TIFF only. PNG is written by :mod:`convcli.png16` on
    ``threads`` threads (default: the usable cores), the same bytes whatever their number;
    TIFF of 16-bit colour or of floats holds one page per channel (alpha last).
    ``quality`` (1-100) is for JPEG and WebP, ``compress_level`` (zlib's 0-9; None: its
    fast run-length mode) for PNG.
    """
    channels = data.shape[2] if data.ndim == 3 else 1
    if data.dtype.kind == "f":
        if fmt != "TIFF":
            raise OutputError(f"{fmt} cannot hold float values; write .tif (float TIFF) or .npy")
        return _tiff_pages(data, alpha)
    if fmt == "PNG" and channels in (1, 3) and data.dtype in (np.uint8, np.uint16):
        from .engine import default_threads
        from .png16 import write_png

        if alpha is None:
            pixels = data
        else:
            pixels = np.concatenate([data.reshape(*data.shape[:2], -1), alpha[..., np.newaxis].astype(data.dtype)],
                                    axis=2)
        return write_png(pixels, level=compress_level, threads=threads if threads is not None else default_threads())
    if data.dtype == np.uint16 and (channels > 1 or alpha is not None):
        if fmt == "PNG":
            raise OutputError(f"cannot write a {channels}-channel result as an image; write .npy instead")
        if fmt == "TIFF":
            return _tiff_pages(data, alpha)
    img = _to_pillow(data, alpha)
    options = dict(_SAVE_OPTIONS.get(fmt, {}))
    if quality is not None and fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if compress_level is not None and fmt == "PNG":
        options.update(compress_level=compress_level, compress_type=zlib.Z_DEFAULT_STRATEGY)
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt, **options)
    except (ValueError, OverflowError, OSError) as exc:
        h, w = data.shape[:2]
        raise OutputError(f"{fmt} cannot hold this {w}x{h} result ({exc}); write PNG, TIFF or .npy") from None
    return buf.getvalue()


def write_image(fh: BinaryIO, data: np.ndarray, alpha: np.ndarray | None, fmt: str) -> None:
    """Write pixels to an open binary file (see :func:`convcli.files.atomic_write`)."""
    fh.write(encode_image(data, alpha, fmt))


def npy_dtype(data: np.ndarray) -> np.dtype:
    """float32, unless the values do not fit in it (then float64)."""
    limit = float(np.finfo(np.float32).max)
    if data.dtype == np.float64 and data.size and float(np.max(np.abs(data))) > limit:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def write_npy(fh: BinaryIO, data: np.ndarray) -> None:
    """The raw map as float32 (float64 when its values exceed float32's range)."""
    np.save(fh, np.asarray(data, dtype=npy_dtype(data)), allow_pickle=False)


def write_npz(fh: BinaryIO, arrays: dict[str, np.ndarray], report: str | None = None) -> None:
    """Several raw maps in one compressed archive, each float32 (float64 if needed), plus
    the run report as JSON text under ``report`` (readable without pickle)."""
    named = {k: np.asarray(v, dtype=npy_dtype(v)) for k, v in arrays.items()}
    if report is not None:
        named["report"] = np.array(report)
    np.savez_compressed(fh, **named)
