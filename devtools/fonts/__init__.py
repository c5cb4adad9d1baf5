"""Build steps for the fonts shipped in static/fonts/."""
