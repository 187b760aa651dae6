"""manage.py export_preferences: the collected preferences in one of the export formats, to a file or stdout."""

import os
import sys
from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from feedback_app.management.commands._campaigns import add_campaign_argument, campaign_named
from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_SLUG
from feedback_app.selectors.exports import FORMATS, LABEL_SOURCES, ExportFilters, export_filter_problems
from feedback_app.services.exports import export_stream


class Command(BaseCommand):
    help = "Export preferences: trl (decided pairs and the pairs rewrites imply), raw (every label), csv or parquet (raw rows), sft (rewrites as prompt and completion). OUT '-' writes to stdout."

    def add_arguments(self, parser):
        parser.add_argument("out", help="Output file, or - for standard output.")
        parser.add_argument("--format", dest="fmt", choices=FORMATS, default="trl")
        parser.add_argument("--from", dest="date_from", help="Labels given at or after this date or datetime (ISO 8601).")
        parser.add_argument("--to", dest="date_to", help="Labels given before this date or datetime (ISO 8601).")
        parser.add_argument("--rater", default="", help="Only this rater (username or pseudonym).")
        parser.add_argument("--tag", action="append", default=[], help="Only prompts with this tag; repeat for several.")
        parser.add_argument("--exclude-flagged", action="store_true", help="Leave out labels flagged unsafe or private.")
        parser.add_argument("--source", dest="label_source", choices=LABEL_SOURCES, default="all",
                            help="Whose labels: human (raters and imports), ai (judges) or all (the default).")
        add_campaign_argument(parser)

    def handle(self, *args, out: str, fmt: str, date_from, date_to, rater: str, tag: list[str], exclude_flagged: bool,
               label_source: str = "all", campaign: str = DEFAULT_CAMPAIGN_SLUG, **options):
        filters = ExportFilters.from_query(date_from=_when(date_from, "--from"), date_to=_when(date_to, "--to"), rater=rater,
                                           tags=tag, exclude_flagged=exclude_flagged, label_source=label_source,
                                           campaign_id=campaign_named(campaign).pk)
        problems = export_filter_problems(filters=filters)
        if problems:
            raise CommandError("; ".join(f"--{'tag' if name == 'tags' else name}: {message}" for name, message in problems.items()))
        if out == "-":
            try:
                for chunk in export_stream(fmt=fmt, filters=filters):
                    sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            except BrokenPipeError:  # the reader stopped (| head): stop as quietly, and let nothing flush into the closed pipe
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return
        path = Path(out)
        tmp = path.with_name(f".{path.name}.partial")
        written = 0
        try:
            with open(tmp, "wb") as f:
                for chunk in export_stream(fmt=fmt, filters=filters):
                    f.write(chunk)
                    written += len(chunk)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise CommandError(f"cannot write {path}: {exc.strerror}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.stderr.write(f"Wrote {written:,} bytes of {fmt} to {path}.")


def _when(value: str | None, option: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = parse_datetime(value)
        day = None if moment else parse_date(value)
    except ValueError:
        moment = day = None
    if moment is None:
        if day is None:
            raise CommandError(f"{option} {value!r} is not an ISO 8601 date or datetime")
        moment = datetime(day.year, day.month, day.day)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)
