"""Reference data shipped with Orderloom."""
