"""The file a campaign's kept training data lives in between workers (``services.training_data``): written whole, appended a segment
at a time under a lock. ``kept`` is the worker's ``training_data._Kept``: the file's inode and how far the worker read it."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

FORMAT = 3  # the file's layout; a file of another is written anew from the database


def _line(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def write(path: Path, kept, segment: dict) -> None:
    """Write the file anew, whole or not at all: the header and the first segment (two workers may write it at once; each writes a complete one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    header = _line({"format": FORMAT, "generation": kept.generation})
    body = _line(segment) if segment["since"] is None else b""  # a segment that does not start the chain is left to this worker's memory
    part.write_bytes(header + body)
    os.replace(part, path)
    kept.inode, kept.offset = os.stat(path).st_ino, len(header) + len(body)
    path.with_suffix(".json").unlink(missing_ok=True)  # the first format's file


def append(path: Path, kept, segment: dict) -> None:
    """Append a segment under the file's lock, first cutting off a line a crash left unfinished."""
    data = _line(segment)
    try:
        file = path.open("r+b")
    except FileNotFoundError:
        return  # removed since this worker read it: the next worker to start writes it anew
    with file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            if os.fstat(file.fileno()).st_ino != kept.inode:
                return  # written anew since this worker read it: this segment stays in this worker's memory
            end = file.seek(0, os.SEEK_END)
            keep = _complete_end(file, end)
            if keep != end:
                file.truncate(keep)
            file.seek(keep)
            file.write(data)
            file.flush()
            if kept.offset == keep:
                kept.offset = keep + len(data)  # its own segment: not to be read back
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _complete_end(file, end: int) -> int:
    """Return where the file's last complete line ends."""
    position = end
    while position > 0:
        start = max(0, position - 65536)
        file.seek(start)
        chunk = file.read(position - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0
