"""Many inputs: expand files, folders and glob patterns, name outputs from a template, and run
the files in worker processes.

Pure: no printing and no argv; the CLI renders what these functions return.

Expansion rules (see :func:`expand_inputs`):

* a file is taken as given (a missing or broken one fails when it is read, exit 1);
* a folder gives the images directly in it, or in its whole tree with ``recursive``; its
  other files are *ignored* (counted, not errors); hidden files and folders (a leading dot,
  which is also how half-written outputs are named) are never read;
* a pattern with ``* ? [`` that names no existing file is expanded like the shell would
  (``**`` descends folders); its non-image matches are ignored like a folder's;
* ``listed`` paths (``--files-from``) are files, one per line, taken as given.

Files found inside a folder or under a pattern's fixed leading folders keep their place
below it (``subdir``), so ``-o DIR`` mirrors the input tree.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ParameterError

__all__ = [
    "FOLDER_SUFFIXES",
    "NAME_FIELDS",
    "Source",
    "Expansion",
    "expand_inputs",
    "check_name_template",
    "render_name",
    "read_list",
    "default_jobs",
    "run_files",
]

#: what a folder or a pattern contributes: image files and NumPy arrays (.txt and .csv are
#: read only when named, since folders hold notes and tables as well as matrices)
FOLDER_SUFFIXES = frozenset(
    ".png .jpg .jpeg .jpe .jfif .tif .tiff .bmp .dib .gif .webp .pgm .ppm .pbm .pnm .tga .ico .npy .npz".split()
)
#: the fields a ``--name`` template may use
NAME_FIELDS = ("stem", "kernel", "ext", "parent", "dir", "name")
_MAGIC = frozenset("*?[")


@dataclass(frozen=True)
class Source:
    """One input and where its outputs go below an output folder (``""``: directly in it)."""

    path: Path
    subdir: str = ""
    #: True when the file was found in a folder or by a pattern, not named
    found: bool = False


@dataclass(frozen=True)
class Expansion:
    sources: tuple[Source, ...]
    #: files found in folders or by patterns that are not images (or are hidden), not read
    ignored: int = 0
    #: files left out by --include/--exclude
    excluded: int = 0
    #: patterns that matched nothing
    unmatched: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def _has_magic(text: str) -> bool:
    return any(c in _MAGIC for c in text)


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in Path(rel).parts)


def _wanted(rel: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """--include/--exclude: a pattern matches the path below its root or the file name."""
    name = rel.rsplit("/", 1)[-1]

    def hit(pattern: str) -> bool:
        return fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(name, pattern)

    if include and not any(hit(p) for p in include):
        return False
    return not any(hit(p) for p in exclude)


def _walk(root: Path, recursive: bool, skip_dirs: Sequence[Path]) -> Iterable[str]:
    """Paths below ``root`` (POSIX, relative), sorted, hidden folders and ``skip_dirs`` left out."""
    skip = {os.path.realpath(d) for d in skip_dirs}
    if not recursive:
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError as exc:
            raise ParameterError(f"cannot list folder {str(root)!r}: {exc.strerror}") from None
        for entry in entries:
            if entry.is_file():
                yield entry.name
        return
    for folder, dirs, files in os.walk(root, onerror=None):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.realpath(os.path.join(folder, d)) not in skip)
        rel_folder = os.path.relpath(folder, root)
        for name in sorted(files):
            yield name if rel_folder == "." else f"{Path(rel_folder).as_posix()}/{name}"


def _fixed_prefix(pattern: str) -> Path:
    """The leading folders of a pattern that contain no wildcard: the root it mirrors from."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if _has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def expand_inputs(
    args: Sequence[str],
    *,
    recursive: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    listed: Sequence[str] = (),
    skip_dirs: Sequence[Path] = (),
) -> Expansion:
    """Files, folders, patterns and listed paths made into one ordered list of sources,
    each file once (the first place it is met wins)."""
    sources: list[Source] = []
    ignored = excluded = 0
    unmatched: list[str] = []
    seen: set[str] = set()

    def add(path: Path, subdir: str, found: bool, rel: str) -> None:
        nonlocal excluded
        if (include or exclude) and not _wanted(rel, include, exclude):
            excluded += 1
            return
        key = os.path.normcase(os.path.realpath(path))
        if key in seen:
            return
        seen.add(key)
        sources.append(Source(path, subdir, found))

    def add_found(root: Path, rel: str) -> None:
        nonlocal ignored
        if _hidden(rel) or Path(rel).suffix.lower() not in FOLDER_SUFFIXES:
            ignored += 1
            return
        parent = str(Path(rel).parent)
        add(root / rel, "" if parent == "." else Path(parent).as_posix(), True, rel)

    for arg in args:
        if arg == "-":
            sources.append(Source(Path("-")))
            continue
        path = Path(arg)
        if path.is_dir():
            for rel in _walk(path, recursive, skip_dirs):
                add_found(path, rel)
        elif not path.exists() and _has_magic(arg):
            root = _fixed_prefix(arg)
            matches = sorted(m for m in glob.glob(arg, recursive=True) if os.path.isfile(m))
            skip = [os.path.realpath(d) + os.sep for d in skip_dirs]
            matches = [m for m in matches if not any(os.path.realpath(m).startswith(s) for s in skip)]
            if not matches:
                unmatched.append(arg)
            for match in matches:
                add_found(root, Path(os.path.relpath(match, root)).as_posix())
        else:
            add(path, "", False, path.as_posix())
    for line in listed:
        path = Path(line)
        add(path, "", False, path.as_posix())
    return Expansion(tuple(sources), ignored, excluded, tuple(unmatched))


def read_list(text: str) -> list[str]:
    """The paths of a --files-from list: one a line; blank lines and surrounding spaces dropped
    (NUL-separated lists, as ``find -print0`` writes, are read too)."""
    parts = text.split("\0") if "\0" in text else text.splitlines()
    return [p.strip() for p in parts if p.strip()]


def check_name_template(template: str) -> str:
    """A --name template: only the known fields, no folder above the output folder."""
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ParameterError(f"--name {template!r}: {exc}; write fields as {{stem}}, and a literal brace as {{{{") \
            from None
    for name in fields:
        if name not in NAME_FIELDS:
            raise ParameterError(
                f"--name {template!r}: unknown field {{{name}}}; use "
                + ", ".join(f"{{{f}}}" for f in NAME_FIELDS)
            )
    if not template.strip() or template.startswith(("/", os.sep)) or ".." in Path(template).parts:
        raise ParameterError(f"--name {template!r}: give a file name (folders below the output folder are fine)")
    return template


def render_name(template: str, *, stem: str, kernel: str, ext: str, parent: str, dir: str, name: str) -> str:
    """Fill a checked template: ``{stem}.{kernel}{ext}`` -> ``photo.sobel-x.png``."""
    return template.format(stem=stem, kernel=kernel, ext=ext, parent=parent, dir=dir, name=name)


def default_jobs() -> int:
    """Worker processes when -j is not given: the usable cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------- worker processes


def _worker_init() -> None:
    """In each worker: Ctrl-C is the parent's to handle; SIGTERM (sent by the parent when it
    stops) unwinds like Ctrl-C, so atomic writes remove their temporary files."""
    import signal

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)


def _context():  # noqa: ANN202
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        # not fork: the parent may run threads (the progress bar); the server starts once and
        # forks each worker with convcli already imported
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["convcli.pipeline", "convcli.layer"])
        return ctx
    return mp.get_context("spawn")  # pragma: no cover - not POSIX


def run_files(
    items: Sequence[object],
    work: Callable[[object], object],
    failed: Callable[[object, str], object],
    *,
    jobs: int = 1,
    on_result: Callable[[int, object], None] | None = None,
    should_stop: Callable[[object], bool] | None = None,
) -> list[object | None]:
    """Call ``work(item)`` for every item, in ``jobs`` worker processes when above 1, and
    return the results in item order (None for items not run because ``should_stop`` said so
    after an earlier result, as ``--fail-fast`` does).

    ``work`` must be a picklable top-level callable (a ``functools.partial`` is fine) that
    returns its failures rather than raising; an unexpected exception, or a worker that dies,
    becomes ``failed(item, message)``. ``on_result(index, result)`` is called in the calling
    process as each item finishes. KeyboardInterrupt stops the workers (each removes its
    temporary files) and is raised again.
    """
    results: list[object | None] = [None] * len(items)
    if jobs <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            results[i] = work(item)
            if on_result is not None:
                on_result(i, results[i])
            if should_stop is not None and should_stop(results[i]):
                break
        return results

    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=_context(), initializer=_worker_init)
    pending: dict = {}
    next_item = 0
    stopping = False
    try:
        # keep only a few items queued per worker, so that a stop leaves little to cancel
        while next_item < len(items) or pending:
            while not stopping and next_item < len(items) and len(pending) < 2 * jobs:
                pending[pool.submit(work, items[next_item])] = next_item
                next_item += 1
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: pending[f]):
                i = pending.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    result = failed(items[i], "a worker process died (out of memory?); rerun with -j 1")
                except Exception as exc:  # a bug: report it, do not lose the batch
                    result = failed(items[i], f"internal error: {type(exc).__name__}: {exc}")
                results[i] = result
                if on_result is not None:
                    on_result(i, result)
                if should_stop is not None and should_stop(result):
                    stopping = True
            if stopping:
                for future in list(pending):
                    if future.cancel():
                        del pending[future]
    except BaseException:
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)
    return results


def _stop_workers(pool) -> None:  # noqa: ANN001
    """Terminate the workers (SIGTERM: each unwinds and removes its temporary files) and wait."""
    processes = list(getattr(pool, "_processes", {}).values())
    for process in processes:
        try:
            process.terminate()
        except Exception:  # noqa: BLE001 - already gone
            pass
    for process in processes:
        process.join(timeout=10)
    pool.shutdown(wait=False, cancel_futures=True)
