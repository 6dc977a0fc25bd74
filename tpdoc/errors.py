"""Typed errors raised by the tpdoc library.

In: nothing. Out: an exception hierarchy rooted at ``TpdocError``. The library raises
these; only the command line turns them into one-line messages and exit codes
(``exit_code`` below), so a Python caller can catch exactly what it cares about.
"""

from __future__ import annotations

from pathlib import Path


class TpdocError(Exception):
    """Base class: a failure the user can cause and fix."""

    exit_code = 1


class UsageError(TpdocError, ValueError):
    """An option or argument has a value tpdoc cannot use."""

    exit_code = 2


class ConfigError(TpdocError, ValueError):
    """A model, projector or tiling configuration is inconsistent."""

    exit_code = 2


class DocumentError(TpdocError):
    """A document cannot be read. The message starts with the file's path."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class DocumentNotFoundError(DocumentError):
    """The path does not exist."""


class NotAFileError(DocumentError):
    """The path is a directory (or another non-file) where a file is expected."""


class UnsupportedFormatError(DocumentError):
    """The file is neither a PDF nor an image format tpdoc reads."""


class CorruptDocumentError(DocumentError):
    """The file claims a supported format but its content is empty, truncated or broken."""


class EncryptedDocumentError(DocumentError):
    """The PDF is encrypted and no (correct) password was given."""


class EmptyDocumentError(DocumentError):
    """The document has no pages."""


class ImageTooLargeError(DocumentError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""


class PageSpecError(DocumentError, UsageError):
    """A page specification is malformed or names pages the document does not have."""

    exit_code = 2


class ModelError(TpdocError):
    """A model cannot be found, recognised or loaded."""


class ModelNotFoundError(ModelError):
    """No model at the given name, folder or hub id (or it is not cached offline)."""


class ModelFormatError(ModelError):
    """A folder exists but is not a model tpdoc can read."""


class WeightsError(ModelError):
    """Weights do not match the model: missing, unexpected or mis-shaped keys."""


class ServerError(TpdocError):
    """`tpdoc serve` cannot listen where it was asked to, or `tpdoc ask --server` cannot
    reach a server or was refused by it; ``exit_code`` is the one the same failure has
    locally (2 for what the server calls bad usage)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
