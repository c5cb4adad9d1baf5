"""The long-running simulator behind `orderloom simulate-carriers`: serve the three carrier services, move every
parcel one step along its journey at a steady pace, and push the changes to the order center when told where."""
import logging
import threading
from collections import Counter

from devtools.simulators.carriers.server import CarrierSimulator

log = logging.getLogger("orderloom.simulator")


def run(host: str = "127.0.0.1", port: int = 8901, seed=1, stop: threading.Event | None = None, *,
        credentials: dict | None = None, step_seconds: float = 30.0,
        kuaidi100_target: tuple[str, str] | None = None, track17_target: tuple[str, str] | None = None) -> None:
    """Serve until interrupted (or `stop` is set). Every `step_seconds`, each parcel whose journey is not over takes
    its next step (events at the wall clock); then changes are pushed to kuaidi100_target (url, salt) and
    track17_target (url, key) when given."""
    stop = stop or threading.Event()
    simulator = CarrierSimulator(seed=seed, credentials=credentials, realtime=True)
    base_url = simulator.start(host, port)
    log.info("simulate=started base_url=%s seed=%s step_seconds=%s kuaidi100_target=%s track17_target=%s", base_url,
             seed, step_seconds, kuaidi100_target[0] if kuaidi100_target else "-",
             track17_target[0] if track17_target else "-")
    ticks = 0
    try:
        while not stop.wait(step_seconds):
            ticks += 1
            kinds = Counter(simulator.advance_parcel(number).kind for number in simulator.unfinished())
            if simulator.pickups:  # couriers named for door pickups, posted to each order's callBackUrl
                simulator.push_pickup_callbacks()
            pushed = {}
            if kuaidi100_target:
                pushed["kuaidi100"] = simulator.push_kuaidi100(kuaidi100_target[0], kuaidi100_target[1])
            if track17_target:
                pushed["17track"] = simulator.push_17track(track17_target[0], track17_target[1])
            log.info("simulate=tick tick=%d %s", ticks, tick_summary(kinds, pushed))
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
        log.info("simulate=stopped ticks=%d", ticks)


def tick_summary(kinds: Counter, pushed: dict) -> str:
    """`events=3 collected=1 delivered=2 pushes=kuaidi100:3/3,17track:3/3` — key=value, one line."""
    parts = [f"events={sum(kinds.values())}"] + [f"{kind}={count}" for kind, count in sorted(kinds.items())]
    if pushed:
        parts.append("pushes=" + ",".join(f"{fmt}:{sum(1 for result in results if result.accepted)}/{len(results)}"
                                          for fmt, results in pushed.items()))
    return " ".join(parts)
