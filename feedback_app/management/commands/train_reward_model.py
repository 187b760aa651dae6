"""manage.py train_reward_model: queue a reward refit, and optionally follow it."""

import json

from django.core.management.base import BaseCommand

from feedback_app.management.commands._campaigns import add_campaign_argument, campaign_named
from feedback_app.management.commands._runs import wait_for_run
from feedback_app.models import TrainingRun
from feedback_app.services.training_runs import training_run_request


class Command(BaseCommand):
    help = "Queue a reward-model refit on the 'gpu' queue; --wait follows it to the end."

    def add_arguments(self, parser):
        parser.add_argument("--tier", choices=["fast", "full"], default="fast")
        add_campaign_argument(parser)
        parser.add_argument("--wait", action="store_true", help="Print progress until the run ends; exit non-zero if it fails.")
        parser.add_argument("--timeout", type=float, default=3600, help="Seconds to wait at most (with --wait).")

    def handle(self, *args, tier: str, wait: bool, timeout: float, campaign: str, **options):
        kind = TrainingRun.Kind.REWARD_FULL if tier == "full" else TrainingRun.Kind.REWARD_FAST
        run = training_run_request(kind=kind, trigger=TrainingRun.Trigger.CLI, campaign_id=campaign_named(campaign).pk)
        self.stdout.write(f"Queued training run {run.pk} ({run.kind}, campaign {campaign}).")
        if wait:
            run = wait_for_run(self, run, timeout=timeout)
            version = run.reward_model_version
            self.stdout.write(json.dumps({"run": run.pk, "version": version.name, "status": version.status, **{
                k: v for k, v in run.metrics.items() if k in ("val_accuracy", "val_loss", "val_ece", "n_train", "n_validation", "seconds", "gate")
            }}, indent=2))
