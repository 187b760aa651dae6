"""How settings read the environment: typed variables with errors that name them, and where the studio keeps its state."""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[2]
# Absolute, so that children started in another directory find the same studio.
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var")).absolute()


def env_bool(name: str, default: bool) -> bool:
    """Return the boolean variable ``name`` (1/0, true/false, yes/no, on/off), or ``default`` when unset."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    """Return the integer variable ``name`` (at least ``minimum``), or ``default`` when unset."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_float(name: str, default: float) -> float:
    """Return the number variable ``name``, or ``default`` when unset."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    """Return the comma-separated variable ``name`` as a list, or ``default`` when unset."""
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]
