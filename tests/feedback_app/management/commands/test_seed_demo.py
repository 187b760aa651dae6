"""manage.py seed_demo: the demo users and comparisons, once."""

import pytest
from django.core.management import call_command

from feedback_app.models import Comparison

pytestmark = pytest.mark.django_db


def test_seed_demo_runs_once(capsys):
    call_command("seed_demo")
    first = capsys.readouterr().out
    assert first.count("password: ") == 3 and "Imported the demo" in first
    n = Comparison.objects.count()
    assert n >= 36
    call_command("seed_demo")
    assert capsys.readouterr().out == "" and Comparison.objects.count() == n

