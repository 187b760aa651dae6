"""Shared by the commands that read a file they are given."""

from pathlib import Path

from django.core.management.base import CommandError

from feedback_app.services.import_columns import ColumnMappingError, column_mapping_parse


def file_read(file: Path) -> bytes:
    """Return the file's bytes, or raise CommandError naming the file and why it cannot be read."""
    try:
        return file.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror}") from None


def add_columns_argument(parser) -> None:
    parser.add_argument("--columns", default="", metavar="MAPPING",
                        help="For a file of another shape, which columns (CSV) or keys (JSONL) feed which field, e.g. "
                             "'prompt=instruction; tags=intent,category; metadata=order_id'. Only the columns named are read.")


def columns_checked(spec: str, *, kind: str) -> str:
    """Return a column mapping that reads, or raise CommandError saying what is wrong with it."""
    try:
        column_mapping_parse(spec, kind=kind)
    except ColumnMappingError as exc:
        raise CommandError(f"--columns: {exc}") from None
    return spec


def left_out_line(left_out: list[str]) -> str:
    """The output's note of the columns a mapping did not read ("" for none)."""
    return f" Left out the columns the mapping does not name: {', '.join(left_out)}." if left_out else ""
