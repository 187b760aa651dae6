"""Response headers that every page carries."""

from django.conf import settings
from django.utils.deprecation import MiddlewareMixin


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Send ``settings.CONTENT_SECURITY_POLICY``, or the override for the longest matching path prefix."""

    def process_response(self, request, response):
        header = "Content-Security-Policy-Report-Only" if settings.CONTENT_SECURITY_POLICY_REPORT_ONLY else "Content-Security-Policy"
        if header in response:  # a view's own, stricter policy (downloads) wins
            return response
        policy = settings.CONTENT_SECURITY_POLICY
        for prefix in sorted(settings.CONTENT_SECURITY_POLICY_OVERRIDES, key=len, reverse=True):
            if request.path.startswith(prefix):
                policy = settings.CONTENT_SECURITY_POLICY_OVERRIDES[prefix]
                break
        if policy:
            response[header] = policy
        return response
