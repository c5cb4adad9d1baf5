"""Loopback simulators of the channel platforms and carriers."""
