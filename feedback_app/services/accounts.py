"""Users and their roles."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from rest_framework.authtoken.models import Token

from feedback_app import events
from feedback_app.models import Profile, Role

# What each staff role may see and do in the Django admin. Raters never enter the admin.
_RESEARCHER_PERMISSIONS = {
    "view": ["prompt", "response", "comparison", "assignment", "preferencelabel", "tag", "importbatch",
             "rewardmodelversion", "policyversion", "trainingrun", "auditentry"],
    "add": ["trainingrun"],
    "change": ["rewardmodelversion", "policyversion"],
}


class UserExists(Exception):
    """A user with that name exists already."""


def role_group_sync(*, user, role: Role) -> None:
    """Give ``user`` the staff flags and admin permissions that ``role`` carries; their open
    websockets check again once this commits."""
    _role_apply(user=user, role=role)
    events.user_access_changed(user_id=user.pk)


def _role_apply(*, user, role: Role) -> None:
    user.is_staff = role in (Role.RESEARCHER, Role.ADMIN)
    user.is_superuser = role == Role.ADMIN
    user.save(update_fields=["is_staff", "is_superuser"])
    researchers = _researcher_group()
    if role == Role.RESEARCHER:
        user.groups.add(researchers)
    else:
        user.groups.remove(researchers)


def _researcher_group() -> Group:
    group, created = Group.objects.get_or_create(name="researchers")
    if created or not group.permissions.exists():
        codenames = [f"{action}_{model}" for action, models in _RESEARCHER_PERMISSIONS.items() for model in models]
        group.permissions.set(Permission.objects.filter(content_type__app_label="feedback_app", codename__in=codenames))
    return group


@transaction.atomic
def user_create(*, username: str, role: Role, password: str | None = None, email: str = "") -> tuple[object, str, str]:
    """Create a user in ``role``; return (user, password, API token).

    A password is generated when none is given; it is returned once and stored only hashed.
    """
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise UserExists(f"a user named {username!r} exists already")
    password = password or secrets.token_urlsafe(12)
    user = User.objects.create_user(username=username, email=email, password=password)
    Profile.objects.create(user=user, role=role)
    _role_apply(user=user, role=role)  # a new user has no websockets to tell
    token = Token.objects.create(user=user)
    return user, password, token.key
