"""Orderloom domain package: models, services, security and the CLI shared by both apps and the workers."""
