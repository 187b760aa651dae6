"""The JSON API (DRF), version 1."""
