"""Shared by the commands that read a file they are given."""

from pathlib import Path

from django.core.management.base import CommandError


def file_read(file: Path) -> bytes:
    """Return the file's bytes, or raise CommandError naming the file and why it cannot be read."""
    try:
        return file.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror}") from None
