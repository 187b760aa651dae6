"""The boundaries between the two packages and the site's layers, checked from outside."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RM_TRAINER_ALONE = """
import importlib, pkgutil, sys
import rm_trainer
for module in pkgutil.iter_modules(rm_trainer.__path__):
    importlib.import_module(f"rm_trainer.{module.name}")
loaded = [name for name in ("django", "celery", "channels", "feedback_app") if name in sys.modules]
assert not loaded, f"rm_trainer imported {loaded}"
"""


def test_rm_trainer_never_imports_django():
    """Importing every rm_trainer module loads no Django, Celery, Channels or feedback_app."""
    subprocess.run([sys.executable, "-c", RM_TRAINER_ALONE], check=True, cwd=ROOT)


def test_the_web_side_never_loads_torch():
    """Importing every web-facing module (views, API, admin, tasks, services) leaves torch unloaded."""
    code = (
        "import os, sys, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'feedback_app.settings'); django.setup(); "
        "import feedback_app.urls, feedback_app.asgi, feedback_app.admin, feedback_app.tasks, feedback_app.events, "
        "feedback_app.services.training, feedback_app.services.supply, feedback_app.services.scoring, feedback_app.services.generation, feedback_app.training_bridge; "
        "from django.test import Client; Client().get('/login/'); "
        "loaded = [m for m in ('torch', 'transformers', 'rm_trainer.train') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_the_bridge_imports_rm_trainer():
    """No module of feedback_app outside training_bridge/ imports rm_trainer (the contract says so too; this can see it)."""
    import re

    bridge = ROOT / "feedback_app" / "training_bridge"
    root = bridge.parent  # feedback_app/
    importing = re.compile(r"^\s*(from|import)\s+rm_trainer", re.MULTILINE)
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if bridge not in p.parents and importing.search(p.read_text())]
    assert offenders == []
    assert any(importing.search(p.read_text()) for p in bridge.rglob("*.py"))  # the check can see an import


def test_the_layers_contract_holds():
    """import-linter's contracts (pyproject.toml) pass: no import upward but the documented one; rm_trainer imports no Django."""
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
