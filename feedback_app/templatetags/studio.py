"""Template helpers of the studio."""

from django import template
from django.utils.safestring import mark_safe

from feedback_app.rendering import markdown_html

register = template.Library()


@register.filter
def markdown(text: str) -> str:
    """Render Markdown written in the studio (raw HTML escaped, unsafe links dropped)."""
    return mark_safe(markdown_html(text))  # noqa: S308 - markdown_html escapes raw HTML


@register.filter
def get_item(mapping, key):
    """Return ``mapping[key]``, or an empty list when absent."""
    return mapping.get(key, [])
