import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from feedback_app import training_bridge
from feedback_app.models import RewardModelVersion
from feedback_app.selectors.training import reward_model_active


class Command(BaseCommand):
    help = "Print the accuracy of a reward model on labelled pairs (TRL or HH JSONL, .gz too) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--reward-version", dest="reward_version", default=None, help="A reward version name (default: the active one).")
        parser.add_argument("--limit", type=int, default=None, help="Use only the first N pairs.")

    def handle(self, *args, file: Path, reward_version: str | None, limit: int | None, **options):
        model = RewardModelVersion.objects.filter(name=reward_version).first() if reward_version else reward_model_active()
        if model is None:
            raise CommandError(f"no reward version named {reward_version!r}" if reward_version else "no reward model is active yet; train one first")
        if model.status == "pruned":
            raise CommandError(f"{model.name} was pruned from the model store (its checkpoint folder is gone)")
        if not file.exists():
            raise CommandError(f"{file} does not exist")
        try:
            pairs = training_bridge.read_preference_file(file)
        except (ValueError, OSError, EOFError) as exc:
            raise CommandError(f"{file}: {exc}") from None
        pairs = pairs[:limit] if limit else pairs
        if not pairs:
            raise CommandError(f"{file} holds no pairs")
        metrics = training_bridge.pairs_evaluate(version_name=model.name, version_path=model.path, pairs=pairs)
        self.stdout.write(json.dumps({"accuracy": metrics["accuracy"], "n": metrics["n"], "version": model.name,
                                      "loss": metrics.get("loss"), "ece": metrics.get("ece")}, indent=2))
