"""Carriers: electronic waybills through a KDNiao-style aggregator (`waybills`) and parcel tracking from Kuaidi100
and 17TRACK (`tracking`), with each platform's signing rule (`signing`). The contract is docs/CARRIERS.md; the
simulator in `devtools.simulators.carriers` serves it for tests, benchmarks and demos."""
from shared.carriers.tracking import (FLAGS, STEPS, Kuaidi100Client, RejectedNumber, Track17Client, TrackingEvent,
                                      TrackingPayloadError, TrackingQueryError, parse_17track_poll, parse_17track_push,
                                      parse_kuaidi100_poll, parse_kuaidi100_push, summarize)
from shared.carriers.waybills import (CARRIER_NAMES, CarrierRefused, CarrierUnavailable, Waybill, WaybillClient,
                                      WaybillRequest)

__all__ = ["CARRIER_NAMES", "FLAGS", "STEPS", "CarrierRefused", "CarrierUnavailable", "Kuaidi100Client",
           "RejectedNumber", "Track17Client", "TrackingEvent", "TrackingPayloadError", "TrackingQueryError", "Waybill",
           "WaybillClient", "WaybillRequest", "parse_17track_poll", "parse_17track_push", "parse_kuaidi100_poll",
           "parse_kuaidi100_push", "summarize"]
