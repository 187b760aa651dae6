"""Who does what: every user has one role."""

import secrets

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    RATER = "rater", "Rater"
    RESEARCHER = "researcher", "Researcher"
    ADMIN = "admin", "Admin"


def _new_pseudonym() -> str:
    return "r-" + secrets.token_hex(6)


class Profile(models.Model):
    """A user's role, and the pseudonym that stands for them in exports."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.RATER)
    pseudonym = models.CharField(max_length=24, unique=True, default=_new_pseudonym, editable=False)

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"
