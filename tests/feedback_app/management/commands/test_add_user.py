"""manage.py add_user: a user with a role, a printed password and an API token stored hashed."""

import hashlib
import re

import pytest
from django.core.management import CommandError, call_command

from feedback_app.models import Profile, Role

pytestmark = pytest.mark.django_db


def test_add_user_prints_password_and_token(capsys):
    call_command("add_user", "carol", "--role", "researcher")
    out = capsys.readouterr().out
    assert "Created researcher 'carol'" in out and "password: " in out and "API token: " in out
    profile = Profile.objects.get(user__username="carol")
    assert profile.role == Role.RESEARCHER and profile.user.is_staff and not profile.user.is_superuser
    key = re.search(r"API token: (\w+)", out).group(1)
    assert profile.user.api_tokens.get().digest == hashlib.sha256(key.encode()).hexdigest()  # stored only hashed
    with pytest.raises(CommandError, match="exists already"):
        call_command("add_user", "carol", "--role", "rater")
