"""Exceptions raised by the convcli core, and the process exit codes.

The core raises these; only :mod:`convcli.cli` turns them into messages and
exit codes. Nothing here imports Typer, Click or Rich.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ExitCode",
    "ConvcliError",
    "ParameterError",
    "KernelError",
    "ShapeError",
    "ImageReadError",
    "OutputError",
]


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    #: A failure while processing valid arguments (unreadable image, any file in a batch).
    FAILURE = 1
    #: The command line itself is wrong; nothing was processed.
    USAGE = 2
    #: Interrupted by Ctrl-C (128 + SIGINT).
    INTERRUPTED = 130


class ConvcliError(Exception):
    """Base class of every error the core raises on purpose.

    ``str(error)`` is a complete one-line message for the user: what was wrong
    and, where there is one, how to fix it.
    """

    #: True when the error is in what the user typed (exit 2), False when it
    #: arose while processing data (exit 1).
    usage: bool = False


class ParameterError(ConvcliError, ValueError):
    """A parameter value is malformed or out of range (stride 0, unknown border...)."""

    usage = True


class KernelError(ConvcliError, ValueError):
    """A kernel spec names no kernel, or its matrix is malformed."""

    usage = True


class ShapeError(ConvcliError, ValueError):
    """A geometry gives no output (kernel larger than the padded input, ...)."""

    usage = True


class ImageReadError(ConvcliError):
    """An input file could not be read as an image or array."""


class OutputError(ConvcliError):
    """An output could not be written, or would destroy data."""
