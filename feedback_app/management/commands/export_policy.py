"""manage.py export_policy NAME OUT: a policy version, merged, as a folder that transformers (vLLM, TGI) loads as it is."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from feedback_app.services.policy_export import PolicyExportError, policy_export


class Command(BaseCommand):
    help = "Write a policy version (its LoRA chain merged) as a transformers folder: safetensors, config, tokenizer, generation_config."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The policy version's name.")
        parser.add_argument("out", type=Path, help="A new (or empty) folder to write.")

    def handle(self, *args, name: str, out: Path, **options):
        try:
            folder = policy_export(name=name, out=out)
        except PolicyExportError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"wrote {name} to {folder}")
