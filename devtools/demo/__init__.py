"""The demo: seeded data and a floor crew moving orders."""
