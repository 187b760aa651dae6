"""Who may call what."""

from rest_framework.permissions import BasePermission

from feedback_app.models import Role
from feedback_app.selectors.accounts import user_has_role


class _HasRole(BasePermission):
    roles: tuple[Role, ...] = ()
    message = "your role does not allow this"

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated) and user_has_role(user=request.user, roles=self.roles)


class IsLabeler(_HasRole):
    roles = (Role.RATER, Role.RESEARCHER, Role.ADMIN)


class IsResearcher(_HasRole):
    roles = (Role.RESEARCHER, Role.ADMIN)
    message = "only researchers and admins may do this"


class IsAdmin(_HasRole):
    roles = (Role.ADMIN,)
    message = "only admins may do this"
