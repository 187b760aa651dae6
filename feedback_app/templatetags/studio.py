"""Template helpers of the studio."""

from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    """Return ``mapping[key]``, or an empty list when absent."""
    return mapping.get(key, [])
