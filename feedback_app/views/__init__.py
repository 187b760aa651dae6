"""HTML views: thin (check, call a service or selector, render)."""
