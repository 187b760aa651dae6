"""manage.py train_policy: queue a DPO policy update, and optionally follow it."""

import json

from django.core.management.base import BaseCommand

from feedback_app.management.commands._campaigns import add_campaign_argument, campaign_named
from feedback_app.management.commands._runs import wait_for_run
from feedback_app.models import TrainingRun
from feedback_app.services.training_runs import training_run_request


class Command(BaseCommand):
    help = "Queue a DPO run that improves the active policy; --wait follows it to the end."

    def add_arguments(self, parser):
        add_campaign_argument(parser)
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--timeout", type=float, default=3 * 3600)

    def handle(self, *args, wait: bool, timeout: float, campaign: str, **options):
        run = training_run_request(kind=TrainingRun.Kind.POLICY_DPO, trigger=TrainingRun.Trigger.CLI, campaign_id=campaign_named(campaign).pk)
        self.stdout.write(f"Queued training run {run.pk} ({run.kind}, campaign {campaign}).")
        if wait:
            run = wait_for_run(self, run, timeout=timeout)
            self.stdout.write(json.dumps({"run": run.pk, "version": run.policy_version.name, "status": run.policy_version.status,
                                          **{k: v for k, v in run.metrics.items() if not isinstance(v, (list, dict))}}, indent=2))
