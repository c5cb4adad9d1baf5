"""A fake of six sales platforms' open APIs (Taobao, JD, Pinduoduo, Douyin shop, Shopify, WooCommerce), served over
real HTTP on loopback with each platform's own signing, JSON shapes and paging, as docs/CHANNELS.md describes.

Used by tests and benchmarks (`ChannelSimulator`) and by `orderloom simulate-channels` (`run`).
"""
from devtools.simulators.channels.formats import PLATFORMS, STATES, Address, OrderLine, SimOrder
from devtools.simulators.channels.server import DEFAULT_CREDENTIALS, ChannelSimulator

__all__ = ["DEFAULT_CREDENTIALS", "PLATFORMS", "STATES", "Address", "ChannelSimulator", "OrderLine", "SimOrder"]
