"""Who a user is to the studio."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from feedback_app.models import Profile, Role


def user_role(*, user: AbstractBaseUser | AnonymousUser) -> Role | None:
    """Return the user's role; superusers are admins, users without a profile have none."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    try:
        return Role(user.profile.role)
    except Profile.DoesNotExist:
        return None


def user_has_role(*, user: AbstractBaseUser | AnonymousUser, roles: tuple[Role, ...]) -> bool:
    """Return whether the user holds one of ``roles``."""
    return user_role(user=user) in roles


def user_pseudonym(*, user_id: int | None) -> str:
    """Return the stable pseudonym that stands for a rater in exports."""
    if user_id is None:
        return ""
    profile = Profile.objects.filter(user_id=user_id).only("pseudonym").first()
    return profile.pseudonym if profile else f"u-{user_id}"
