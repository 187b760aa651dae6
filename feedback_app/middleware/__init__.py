"""Middleware: headers every page carries (csp) and answers for a full disk (disk_full)."""
