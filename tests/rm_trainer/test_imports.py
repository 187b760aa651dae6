import subprocess
import sys
from pathlib import Path

CODE = """
import importlib, pkgutil, sys
import rm_trainer
for module in pkgutil.iter_modules(rm_trainer.__path__):
    importlib.import_module(f"rm_trainer.{module.name}")
loaded = [name for name in ("django", "celery", "channels", "feedback_app") if name in sys.modules]
assert not loaded, f"rm_trainer imported {loaded}"
"""


def test_rm_trainer_never_imports_django():
    """Importing every rm_trainer module loads no Django, Celery, Channels or feedback_app."""
    subprocess.run([sys.executable, "-c", CODE], check=True, cwd=Path(__file__).resolve().parents[2])
