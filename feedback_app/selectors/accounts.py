"""Who a user is to the studio."""

from functools import lru_cache

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection

from feedback_app.models import ApiToken, CampaignMember, Profile, Role
from feedback_app.models.accounts import api_token_digest
from feedback_app.selectors import rows


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


def user_active_get(*, user_id: int) -> AbstractBaseUser | None:
    """Return the user ``user_id`` if they exist and are active, read afresh."""
    return get_user_model().objects.filter(pk=user_id, is_active=True).first()


def user_exists(*, username: str) -> bool:
    """Return whether a user named ``username`` exists."""
    return get_user_model().objects.filter(username=username).exists()


def user_role_stored(*, user: AbstractBaseUser) -> Role | None:
    """Return the role on the user's profile as stored (None without a profile)."""
    profile = Profile.objects.filter(user=user).first()
    return Role(profile.role) if profile is not None else None


def api_token_valid(*, key: str) -> ApiToken | None:
    """Return the unrevoked token whose digest ``key`` has, with its user and role joined in and the user's campaign
    memberships read in the same query as ``token.memberships`` ({campaign id: role}); one query, written out: every
    API call asks it (or ``selectors.token_cache``, which keeps the row)."""
    row = api_token_row(digest=api_token_digest(key))
    return None if row is None else api_token_from_row(row)


def api_token_row(*, digest: str) -> tuple | None:
    """Return the row ``api_token_from_row`` makes a token of: the unrevoked token of ``digest``, its user, their profile and
    memberships; None when no unrevoked token has that digest."""
    found = rows.tuples(_api_token_sql(connection.vendor), [digest])
    return found[0] if found else None


@lru_cache(maxsize=None)
def _api_token_sql(vendor: str) -> str:
    user_model = get_user_model()
    aggregate = "string_agg" if vendor == "postgresql" else "group_concat"
    return (f"SELECT {rows.columns(ApiToken, 't')}, {rows.columns(user_model, 'u')}, {rows.columns(Profile, 'r')}, "
            f"(SELECT {aggregate}(m.campaign_id || ':' || m.role, ',') FROM {CampaignMember._meta.db_table} m WHERE m.user_id = u.id) "
            f"FROM {ApiToken._meta.db_table} t INNER JOIN {user_model._meta.db_table} u ON u.id = t.user_id "
            f"LEFT JOIN {Profile._meta.db_table} r ON r.user_id = u.id WHERE t.digest = %s AND t.revoked_at IS NULL")


def api_token_from_row(row: tuple) -> ApiToken:
    """Return the token of ``row`` (``api_token_row``) with ``token.user`` (its profile cached, None when it has none) and
    ``token.memberships``: new instances each call."""
    user_model = get_user_model()
    token, user, profile, memberships = rows.cut(row, ApiToken, user_model, Profile)
    token.user = user
    token.memberships = {int(campaign): role for campaign, role in (pair.split(":") for pair in (memberships or "").split(",") if pair)}
    user_model.profile.related.set_cached_value(user, profile)  # None: no profile, known without asking again
    return token
