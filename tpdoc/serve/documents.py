"""Documents that arrive inside requests: a base64 data URL -> a private temporary file.

In: the ``url`` of an ``image_url`` part or the ``file_data`` of a ``file`` part, and the
name the client gave the document. Out: an ``Upload``, a file in a folder only this
process may read (mode 0700), named by a random id plus the suffix of the client's name,
and removed as soon as its request is done (the whole folder when the server stops).

The file is then opened by ``tpdoc.documents.pages`` exactly as ``tpdoc ask`` opens a file on disk:
the type comes from the content, and the same checks refuse decompression bombs and
damaged or encrypted PDFs with the same messages. The suffix is kept because one message
depends on it (a ``*.pdf`` that is not a PDF is "not a PDF", anything else
"unsupported"); the client's name replaces the temporary path in messages and results.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from tpdoc.errors import UsageError

DEFAULT_NAME = "document"  # the name of a document sent without one (image_url parts)
MAX_NAME_CHARS = 255
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}", re.ASCII)
PRIVATE_FILE_MODE = 0o600


class InvalidDataUrlError(UsageError):
    """A document part is not a base64 data URL."""


@dataclass(frozen=True)
class Upload:
    """A request's document on disk: ``path`` is read, ``name`` is what the client sees."""

    path: Path
    name: str

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def public(self, message: str) -> str:
        """``message`` with the temporary path replaced by the client's name."""
        return message.replace(str(self.path), self.name)


def decode_data_url(url: str) -> bytes:
    """The bytes of ``data:[<media type>][;params];base64,<data>``; the media type is not
    checked (the content decides the format, as for files on disk)."""
    if not url.startswith("data:"):
        scheme = url.split(":", 1)[0] if ":" in url[:16] else "no scheme"
        raise InvalidDataUrlError(
            f"the document must be a base64 data URL (data:<type>;base64,...), got {scheme}: "
            "the server fetches nothing"
        )
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidDataUrlError("the document's data URL is not base64 (data:<type>;base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidDataUrlError(f"the document's data URL holds invalid base64: {exc}") from None


def display_name(name: str | None) -> str:
    """The client's name for a document, printable and on one line."""
    text = "".join(c for c in (name or "") if c.isprintable()).strip()
    return text[:MAX_NAME_CHARS] or DEFAULT_NAME


class UploadFolder:
    """A private folder for the documents of the requests in flight."""

    def __init__(self, parent: str | Path | None = None) -> None:
        # mkdtemp creates the folder readable by this user only (0700).
        self.root = Path(tempfile.mkdtemp(prefix="tpdoc-serve-", dir=parent))

    def save(self, data: bytes, name: str | None) -> Upload:
        shown = display_name(name)
        suffix = Path(shown).suffix
        path = self.root / (uuid.uuid4().hex + (suffix if _SUFFIX.fullmatch(suffix) else ""))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Upload(path, shown)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
