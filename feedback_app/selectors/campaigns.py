"""Campaigns, and who may work in which.

A user's role in a campaign: studio admins are admins everywhere; a member has the role of their
membership; a user who belongs to no campaign at all is in the default campaign with their studio
role (so a studio with one campaign works as it always did). Anyone else has no role there.
"""

from __future__ import annotations

import pickle
from time import monotonic

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import OuterRef, QuerySet, Subquery

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Campaign, CampaignMember, Prompt, Role
from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_SLUG
from feedback_app.selectors import rows
from feedback_app.selectors.accounts import user_role

CACHE_SECONDS = 10
_KEPT: dict[int, tuple[float, bytes]] = {}  # campaign id -> (when, by time.monotonic, it expires; its row's values, pickled)


def comparisons_in_campaign(comparisons: QuerySet, *, campaign_id: int) -> QuerySet:
    """Narrow ``comparisons`` to one campaign by looking up each one's prompt.

    For a set an index keeps small (the backlog, the last hour's): a join with the prompts instead
    has PostgreSQL read every prompt of the campaign (all of them, in a studio of one campaign),
    and that grows with the history.
    """
    return comparisons.alias(campaign=Subquery(Prompt.objects.filter(pk=OuterRef("prompt_id")).values("campaign_id")[:1])).filter(campaign=campaign_id)


def campaign_default() -> Campaign:
    """Return the default campaign, made with default rules on first use (as a flushed test database needs)."""
    campaign = Campaign.objects.filter(pk=DEFAULT_CAMPAIGN_ID).first()
    if campaign is not None:
        return campaign
    with transaction.atomic():
        campaign, created = Campaign.objects.get_or_create(pk=DEFAULT_CAMPAIGN_ID, defaults={"slug": DEFAULT_CAMPAIGN_SLUG, "name": "Default campaign"})
        if created:  # the row was given its key by hand; the sequence must not hand it out again (PostgreSQL)
            with connection.cursor() as cursor:
                for sql in connection.ops.sequence_reset_sql(no_style(), [Campaign]):
                    cursor.execute(sql)
    return campaign


def campaign_get(*, campaign_id: int) -> Campaign:
    """Return campaign ``campaign_id`` read afresh (the default one is made on first use)."""
    return campaign_default() if campaign_id == DEFAULT_CAMPAIGN_ID else Campaign.objects.get(pk=campaign_id)


def campaign_cached(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> Campaign:
    """Return the campaign's rules as this process saw them at most CACHE_SECONDS ago: a fresh instance at every call.

    The process keeps the row's values, pickled (``_KEPT``), not an instance, and not in Django's cache: a label asks this
    once or twice, and unpickling a model instance from the cache, with the cache's key check and lock, cost about a
    thirtieth of a label's CPU in the web process."""
    kept = _KEPT.get(campaign_id)
    if kept is not None and kept[0] > monotonic():
        return rows.made(Campaign, pickle.loads(kept[1]))  # its own lists (criteria, flags): a caller's change stays its own
    campaign = campaign_get(campaign_id=campaign_id)
    _KEPT[campaign_id] = (monotonic() + CACHE_SECONDS, pickle.dumps(rows.values_of(campaign), pickle.HIGHEST_PROTOCOL))
    return campaign


def campaign_ids_training() -> list[int]:
    """Return the ids of the campaigns whose model lines may learn (every campaign not archived), the default one first."""
    campaign_default()
    return list(Campaign.objects.exclude(state=Campaign.State.ARCHIVED).order_by("id").values_list("pk", flat=True))


def campaign_ids_supplied() -> list[int]:
    """Return the ids of the active campaigns, whose prompts the supply answers, the default one first."""
    campaign_default()
    return list(Campaign.objects.filter(state=Campaign.State.ACTIVE).order_by("id").values_list("pk", flat=True))


def campaign_ids_ai_feedback() -> list[int]:
    """Return the ids of the campaigns (not archived) where AI feedback may label, the default one first."""
    campaign_default()
    return list(Campaign.objects.exclude(state=Campaign.State.ARCHIVED).filter(ai_feedback=True).order_by("id").values_list("pk", flat=True))


def campaign_cache_forget(*, campaign_id: int) -> None:
    """Drop this process's kept copy of the campaign's rules (after changing them)."""
    _KEPT.pop(campaign_id, None)


def campaign_cache_clear() -> None:
    """Drop this process's kept copies of every campaign's rules."""
    _KEPT.clear()


def campaign_by_slug(*, slug: str) -> Campaign | None:
    """Return the campaign named ``slug`` in URLs as this process saw it at most CACHE_SECONDS ago, or None."""
    from django.core.cache import cache

    if slug == DEFAULT_CAMPAIGN_SLUG:
        return campaign_cached()
    campaign_id = cache.get(f"feedback_app:campaign-slug:{slug}")
    if campaign_id is None:
        campaign_id = Campaign.objects.filter(slug=slug).values_list("pk", flat=True).first()
        if campaign_id is None:
            return None
        cache.set(f"feedback_app:campaign-slug:{slug}", campaign_id, CACHE_SECONDS)
    try:
        return campaign_cached(campaign_id=campaign_id)
    except Campaign.DoesNotExist:
        return None


def member_get(*, user, campaign: Campaign) -> CampaignMember | None:
    """Return the user's membership of the campaign, if they have one."""
    return CampaignMember.objects.filter(user=user, campaign=campaign).first()


def campaign_role(*, user: AbstractBaseUser | AnonymousUser, campaign: Campaign, memberships: dict[int, str] | None = None) -> Role | None:
    """Return the user's role in the campaign (see the module's docstring), or None if they may not work in it.

    ``memberships`` ({campaign id: role}) are the user's memberships if the caller read them already (an API token's
    lookup reads them at the start of its request); None reads them now.
    """
    studio = user_role(user=user)
    if studio is None or studio == Role.ADMIN:
        return studio
    # written out: every labeling call asks it
    roles = memberships if memberships is not None else dict(
        rows.tuples(f"SELECT campaign_id, role FROM {CampaignMember._meta.db_table} WHERE user_id = %s", [user.pk]))
    return campaign_role_of(user=user, campaign_id=campaign.pk, membership=roles.get(campaign.pk), any_membership=bool(roles))


def campaign_role_of(*, user: AbstractBaseUser | AnonymousUser, campaign_id: int, membership: str | None, any_membership: bool) -> Role | None:
    """Return the user's role in campaign ``campaign_id`` as ``campaign_role`` does, given their membership's role there
    (None without one) and whether they belong to any campaign: for a statement that reads the two along with its own."""
    studio = user_role(user=user)
    if studio is None or studio == Role.ADMIN:
        return studio
    if membership is not None:
        return Role(membership)
    if campaign_id == DEFAULT_CAMPAIGN_ID and not any_membership:
        return studio
    return None


# The select list that reads campaign_role_of's membership and any_membership for the user ``user_column`` and the campaign
# of the next parameter: two lookups by the (campaign, user) key and the user's index.
MEMBERSHIP_COLUMNS = (f"(SELECT m.role FROM {CampaignMember._meta.db_table} m WHERE m.campaign_id = %s AND m.user_id = {{user_column}}), "
                      f"EXISTS (SELECT 1 FROM {CampaignMember._meta.db_table} m WHERE m.user_id = {{user_column}})")


def campaigns_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Campaign]:
    """Return the campaigns the user may work in, archived ones included, in order of creation."""
    studio = user_role(user=user)
    if studio is None:
        return Campaign.objects.none()
    if studio == Role.ADMIN:
        campaign_default()
        return Campaign.objects.all()
    ids = list(CampaignMember.objects.filter(user=user).values_list("campaign_id", flat=True))
    if not ids:
        return Campaign.objects.filter(pk=campaign_default().pk)
    return Campaign.objects.filter(pk__in=ids)
