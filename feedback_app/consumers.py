"""Websocket consumers: they check who connects, join groups and relay pushed HTML fragments.

Pushes are hints; the database is the truth. Every (re)connect first receives the current
state, rendered from the database, so a lost message never leaves a stale screen.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from feedback_app import live
from feedback_app.events import dashboard_group, raters_group, user_group
from feedback_app.models import Role
from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_SLUG
from feedback_app.selectors.accounts import user_active_get
from feedback_app.selectors.campaigns import campaign_by_slug, campaign_role

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class _RelayConsumer(AsyncWebsocketConsumer):
    """A socket of one campaign: the one its URL names (``/ws/c/<slug>/...``), else the default campaign.

    Asynchronous, so a push to thousands of sockets relays each fragment on the event loop; only
    the checks and the first state read the database (in a worker thread).
    """

    roles: tuple[Role, ...] = ()

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        slug = self.scope.get("url_route", {}).get("kwargs", {}).get("campaign_slug", DEFAULT_CAMPAIGN_SLUG)
        self.campaign = await database_sync_to_async(campaign_by_slug)(slug=slug)
        if self.campaign is None or await database_sync_to_async(campaign_role)(user=user, campaign=self.campaign) not in self.roles:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.joined = [*self.group_names(user), user_group(user.pk)]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send(text_data=await database_sync_to_async(self.current_state)(user))

    async def disconnect(self, code) -> None:
        for group in getattr(self, "joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)

    def group_names(self, user) -> list[str]:
        raise NotImplementedError

    def current_state(self, user) -> str:
        """Render the state a (re)connected socket starts from (called in a worker thread: it reads the database)."""
        raise NotImplementedError

    async def access_changed(self, event) -> None:
        """Close when this socket's session ended, or when its user lost the role it needs."""
        session = self.scope.get("session")
        if event.get("session_key") is not None:
            if session is not None and session.session_key == event["session_key"]:
                await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        user = await database_sync_to_async(user_active_get)(user_id=self.scope["user"].pk)
        if user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
        elif await database_sync_to_async(campaign_role)(user=user, campaign=self.campaign) not in self.roles:
            await self.close(code=CLOSE_FORBIDDEN)

    # Event handlers: one per event type, each forwards the fragment it carries.
    async def dashboard_update(self, event) -> None:
        await self.send(text_data=event["html"])

    async def run_progress(self, event) -> None:
        await self.send(text_data=event["html"])

    async def policy_swapped(self, event) -> None:
        await self.send(text_data=event["html"])

    async def queue_changed(self, event) -> None:
        await self.send(text_data=event["html"])


class DashboardConsumer(_RelayConsumer):
    """``/ws/dashboard/`` and ``/ws/c/<slug>/dashboard/``: the campaign's researchers and admins."""

    roles = (Role.RESEARCHER, Role.ADMIN)

    def group_names(self, user) -> list[str]:
        return [dashboard_group(campaign_id=self.campaign.pk)]

    def current_state(self, user) -> str:
        return live.dashboard_state_html(campaign_id=self.campaign.pk)


class RaterConsumer(_RelayConsumer):
    """``/ws/rater/`` and ``/ws/c/<slug>/rater/``: anyone who labels in the campaign."""

    roles = (Role.RATER, Role.RESEARCHER, Role.ADMIN)

    def group_names(self, user) -> list[str]:
        return [raters_group(campaign_id=self.campaign.pk), f"rater.{user.pk}"]

    def current_state(self, user) -> str:
        return live.rater_state_html(user=user, campaign_id=self.campaign.pk)

