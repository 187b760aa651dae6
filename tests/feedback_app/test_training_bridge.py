import subprocess
import sys

import pytest

from feedback_app import training_bridge


def test_the_web_side_never_loads_torch():
    """Importing every web-facing module (views, API, admin, tasks, services) leaves torch unloaded."""
    code = (
        "import os, sys, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'feedback_app.settings'); django.setup(); "
        "import feedback_app.urls, feedback_app.asgi, feedback_app.admin, feedback_app.tasks, feedback_app.events, "
        "feedback_app.services.training, feedback_app.services.supply, feedback_app.services.scoring, feedback_app.training_bridge; "
        "from django.test import Client; Client().get('/login/'); "
        "loaded = [m for m in ('torch', 'transformers', 'rm_trainer.train') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_the_bridge_imports_rm_trainer():
    import re
    from pathlib import Path

    bridge = Path(training_bridge.__file__).parent
    root = bridge.parent  # feedback_app/
    importing = re.compile(r"^\s*(from|import)\s+rm_trainer", re.MULTILINE)
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if bridge not in p.parents and importing.search(p.read_text())]
    assert offenders == []
    assert any(importing.search(p.read_text()) for p in bridge.rglob("*.py"))  # the check can see an import


def test_default_models_are_found_offline():
    folder, gguf = training_bridge.generator_source()
    assert (training_bridge.Path(folder) / gguf).exists()
    assert (training_bridge.Path(training_bridge.reward_backbone()) / "config.json").exists()


@pytest.mark.django_db
def test_preference_pairs_aggregate_per_comparison(make_user, make_comparisons):
    from feedback_app.models import PreferenceLabel
    from feedback_app.services.labeling import LabelSubmission, assignment_lease_next, label_record

    (comparison,) = make_comparisons(1, required_labels=3)
    for choice in ("left", "left", "left"):
        rater = make_user()
        a = assignment_lease_next(rater=rater)
        label_record(rater=rater, comparison_id=a.comparison_id, submission=LabelSubmission(choice=choice, strength=3))
    labels = PreferenceLabel.objects.select_related("comparison__prompt", "comparison__response_a", "comparison__response_b").order_by("comparison_id")
    (pair,) = training_bridge.preference_pairs(labels)
    assert pair.pair_id == str(comparison.pk) and pair.prompt == comparison.prompt.text
    assert {pair.chosen, pair.rejected} == {comparison.response_a.text, comparison.response_b.text}
