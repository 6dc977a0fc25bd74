"""JSON-lines record files that survive interruption: whole lines or nothing.

In: a path to append to (``--out``) and records (dicts). Out: one JSON object per line,
each written with a single ``write`` on an ``O_APPEND`` descriptor, so Ctrl-C or a kill
between or during records leaves only whole lines; a half line found at the end of an
existing file (a crash of something else, a full disk) is cut off before appending. A
record that cannot be written (a full disk, a lost mount) is a ``RecordWriteError`` naming
the file: the run cannot go on without losing records. Also reads back the records
already there, for ``--resume``.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tpdoc.errors import TpdocError, UsageError

IS_A_DIRECTORY = "is a directory"


class RecordWriteError(TpdocError):
    """A record could not be appended to its file."""


def error_reason(exc: BaseException) -> str:
    """What went wrong, in a few words: an ``OSError``'s own (``No space left on
    device``), else the exception's text."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


class RecordWriter:
    """Appends JSON lines to ``path`` (``append=False``: starts the file afresh)."""

    def __init__(self, path: str | Path, *, append: bool = True, option: str = "--out") -> None:
        self.path = Path(path)
        self.option = option
        self.written = 0  # records written by this writer
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | (0 if append else os.O_TRUNC)
        try:
            if self.path.is_dir():
                raise IsADirectoryError(errno.EISDIR, IS_A_DIRECTORY)
            self.fd = os.open(self.path, flags, 0o666)
            _cut_partial_line(self.fd)
        except OSError as exc:
            raise UsageError(f"{option} {path}: cannot write: {error_reason(exc)}") from exc

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line; ``RecordWriteError`` if the file refuses it (a
        half line left behind is cut off when the file is next opened)."""
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        view = memoryview(data)
        try:
            while view:  # one write on regular files; the loop only guards short writes
                written = os.write(self.fd, view)
                view = view[written:]
        except OSError as exc:
            raise RecordWriteError(
                f"{self.option} {self.path}: cannot write a record: {error_reason(exc)}"
            ) from exc
        self.written += 1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_writable(path: str | Path, *, option: str = "--out") -> None:
    """``UsageError`` now if ``RecordWriter`` could not open ``path`` (a folder, a missing
    folder, no permission), so a run can fail before its slow start; touches nothing."""
    path = Path(path)
    if path.is_dir():
        problem = IS_A_DIRECTORY
    elif path.exists():
        problem = None if os.access(path, os.W_OK) else os.strerror(errno.EACCES)
    elif not path.parent.is_dir():
        problem = os.strerror(errno.ENOENT)
    else:
        writable = os.access(path.parent, os.W_OK | os.X_OK)
        problem = None if writable else os.strerror(errno.EACCES)
    if problem is not None:
        raise UsageError(f"{option} {path}: cannot write: {problem}")


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The whole, parseable JSON objects of a record file (a missing file has none)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot read: {error_reason(exc)}") from exc
    *lines, _unfinished = data.split(b"\n")  # after the last newline: a half line or b""
    for raw in lines:
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            yield record


def _cut_partial_line(fd: int) -> None:
    """Truncate an unfinished last line, so the next record starts on a line of its own."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    chunk = 4096
    end = size
    while end > 0:
        start = max(0, end - chunk)
        data = os.pread(fd, end - start, start)
        if end == size and data.endswith(b"\n"):
            return
        newline = data.rfind(b"\n")
        if newline >= 0:
            os.ftruncate(fd, start + newline + 1)
            return
        end = start
    os.ftruncate(fd, 0)
