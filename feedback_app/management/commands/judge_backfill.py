"""manage.py judge_backfill JUDGE: the judge's verdicts on comparisons people labelled, to measure it before it labels anything."""

from django.core.management.base import BaseCommand, CommandError

from feedback_app.selectors.judges import judge_get
from feedback_app.services.judge_backfill import judge_backfill
from feedback_app.services.judges import JudgeUnavailable


class Command(BaseCommand):
    help = ("Ask an enabled judge about the comparisons raters labelled that its current version has not judged; its agreement "
            "with people then shows on the label-quality page. Its verdicts never become labels.")

    def add_arguments(self, parser):
        parser.add_argument("judge", help="The judge's name (see the admin's Judges).")
        parser.add_argument("--limit", type=int, default=None, help="Ask about at most this many comparisons, oldest first.")

    def handle(self, *args, judge: str, limit: int | None, **options):
        found = judge_get(name=judge)
        if found is None:
            raise CommandError(f"no judge named {judge!r}")
        try:
            answered = judge_backfill(judge=found, limit=limit)
        except JudgeUnavailable as exc:
            raise CommandError(str(exc)) from None
        summary = ", ".join(f"{key} {n}" for key, n in sorted(answered.items())) or "nothing new to judge"
        self.stdout.write(f"{found.name}: {sum(answered.values())} verdict(s): {summary}.")
