"""A fake of the carrier platforms Orderloom talks to: a KDNiao-style e-waybill service (快递鸟 RequestType 1007),
Kuaidi100's real-time query and subscription pushes, and 17TRACK's gettrackinfo and webhooks, served over real HTTP
on loopback with each platform's own signing and JSON, as docs/CARRIERS.md describes.

Used by tests and benchmarks (`CarrierSimulator`) and by `orderloom simulate-carriers` (`run`).
"""
from devtools.simulators.carriers.formats import CARRIERS, JOURNEY, KINDS, SimEvent
from devtools.simulators.carriers.server import DEFAULT_CREDENTIALS, CarrierSimulator, IssuedWaybill, PushResult

__all__ = ["CARRIERS", "DEFAULT_CREDENTIALS", "JOURNEY", "KINDS", "CarrierSimulator", "IssuedWaybill", "PushResult",
           "SimEvent"]
