"""Who does what: every user has one role."""

import hashlib
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


def api_token_digest(key: str) -> str:
    """Return the SHA-256 hex digest under which an API token's key is stored."""
    # Keys are 160 random bits, so a fast hash is enough: there is nothing to guess a key from.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    """An API key, stored only as its digest; the key itself is shown once, when it is made."""

    PREFIX_LENGTH = 8

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False, help_text="The key's first characters, to tell tokens apart.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
