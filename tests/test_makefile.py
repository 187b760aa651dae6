"""The Makefile keeps the studio's files where settings look for them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

ROOT = Path(django_settings.BASE_DIR)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_secret_key_lands_under_var_dir_and_settings_read_it_there(tmp_path):
    """`VAR_DIR=... make` writes the secret key in that VAR_DIR, where settings find it."""
    var_dir = tmp_path / "studio"
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), f"{var_dir}/secret_key"], env={**env, "VAR_DIR": str(var_dir)},
                   check=True, capture_output=True)
    key = (var_dir / "secret_key").read_text().strip()
    assert len(key) >= 50 and (var_dir / "secret_key").stat().st_mode & 0o077 == 0
    assert not (tmp_path / "var").exists()
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**env, "VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "feedback_app.settings"})
    assert result.stdout.strip() == key, result.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_install_asks_for_the_secret_key_under_var_dir(tmp_path):
    """`make install` (thus `make run` and `make test`) depends on $(VAR_DIR)/secret_key."""
    result = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "-n", "-W", str(ROOT / "requirements.txt"), "install"],
                            env={**os.environ, "VAR_DIR": str(tmp_path / "studio")}, capture_output=True, text=True, check=True)
    assert f"> {tmp_path / 'studio'}/secret_key" in result.stdout
