"""manage.py evaluate_reward_model: a reward version's accuracy on a file of labelled pairs, as JSON."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from feedback_app.services.evaluation import EvaluationError, reward_model_evaluate_file


class Command(BaseCommand):
    help = "Print the accuracy of a reward model on labelled pairs (TRL or HH JSONL, .gz too) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--reward-version", dest="reward_version", default=None, help="A reward version name (default: the active one).")
        parser.add_argument("--limit", type=int, default=None, help="Use only the first N pairs.")

    def handle(self, *args, file: Path, reward_version: str | None, limit: int | None, **options):
        try:
            result = reward_model_evaluate_file(file=file, reward_version=reward_version, limit=limit)
        except EvaluationError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(result, indent=2))
