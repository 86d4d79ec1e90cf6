"""Reading a file into text, with one clear message for each way that can fail."""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import tokenize
from typing import BinaryIO


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_BARE_LINE_FEED = re.compile(r"(?<!\r)\n")


def is_notebook(path: str) -> bool:
    return path.lower().endswith(".ipynb")


def split_lines(text: str, keepends: bool = False) -> list[str]:
    """The lines as Python (and LibCST) count them: only \n, \r\n and \r end a line, unlike
    str.splitlines, which also splits at form feeds and Unicode line separators."""
    lines = _LINE.findall(text)
    return lines if keepends else [line.rstrip("\r\n") for line in lines]


def line_ending(text: str) -> str:
    """The file's newline: its first line's ending, as LibCST's Module.default_newline takes it."""
    match = _NEWLINE.search(text)
    return match.group(0) if match else "\n"


def with_newline(text: str, newline: str) -> str:
    """text with each bare `\n` written as newline (a `\r\n` already there is left alone)."""
    return _BARE_LINE_FEED.sub(newline, text)


class SourceError(Exception):
    """A file that cannot be read as Python source; str(error) is a one-line reason."""


def decode_source(data: bytes) -> str:
    if b"\x00" in data:
        raise SourceError("binary file (contains NUL bytes), not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        if "unknown encoding" in str(error):
            raise SourceError(str(error)) from None
        encoding = "utf-8"  # undecodable bytes near the top: the decode below says where
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as error:
        position = getattr(error, "start", None)
        where = f" at byte {position}" if position is not None else ""
        raise SourceError(f"not valid {encoding} text{where}; is it a Python file?") from None
    return text[1:] if text.startswith("\ufeff") else text


def read_source(path: str) -> str:
    return decode_source(read_bytes(path))


class NotRegularFileError(OSError):
    """A FIFO, device or socket where a file was expected: reading it could block forever."""


def open_regular(path) -> BinaryIO:
    """Open a regular file for reading in binary mode. The open does not block (a FIFO with no
    writer would wait forever) and anything but a regular file raises NotRegularFileError."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(errno.EINVAL, "not a regular file", str(path))
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_bytes(path: str) -> bytes:
    try:
        with open_regular(path) as handle:
            return handle.read()
    except FileNotFoundError:
        raise SourceError("no such file") from None
    except IsADirectoryError:
        raise SourceError("is a directory") from None
    except NotRegularFileError:
        raise SourceError("not a regular file (a FIFO or device?)") from None
    except PermissionError:
        raise SourceError("permission denied") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SourceError("symbolic link loop") from None
        raise SourceError(error.strerror or str(error)) from None
