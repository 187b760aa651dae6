"""Reads: queries that views, the API and tasks share."""
