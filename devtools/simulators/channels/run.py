"""The long-running simulator behind `orderloom simulate-channels`: serve the six platforms, let orders happen at
a steady rate, and push Shopify and WooCommerce webhooks to the order center."""
import logging
import threading
import time
from collections import Counter

from devtools.simulators.channels.formats import WEBHOOK_PLATFORMS
from devtools.simulators.channels.server import ChannelSimulator

log = logging.getLogger("orderloom.simulator")


def run(host: str = "127.0.0.1", port: int = 8900, seed=1, rate_per_minute: float = 60.0,
        webhook_targets: dict[str, tuple[str, str]] | None = None, *, batch_seconds: float = 5.0,
        credentials: dict | None = None, skus=None, unknown_sku_rate: float = 0.0,
        stop: threading.Event | None = None, encrypted: bool = True) -> None:
    """Serve until interrupted (or `stop` is set), applying `rate_per_minute` stream events spread over batches of
    `batch_seconds`, then pushing webhooks: webhook_targets maps "shopify"/"woocommerce" to (url, secret).
    The Chinese platforms serve encrypted buyer fields unless `encrypted` is False."""
    targets = webhook_targets or {}
    unknown = set(targets) - set(WEBHOOK_PLATFORMS)
    if unknown:
        raise ValueError(f"only {', '.join(WEBHOOK_PLATFORMS)} send webhooks, not {', '.join(sorted(unknown))}")
    stop = stop or threading.Event()
    simulator = ChannelSimulator(credentials, seed=seed, skus=skus, realtime=True, unknown_sku_rate=unknown_sku_rate,
                                 encrypted=encrypted)
    base_url = simulator.start(host, port)
    log.info("simulate=started base_url=%s seed=%s rate_per_minute=%s webhook_targets=%s", base_url, seed,
             rate_per_minute, ",".join(f"{platform}:{url}" for platform, (url, _secret) in targets.items()) or "-")
    due = 0.0
    last = time.monotonic()
    batch = 0
    try:
        while not stop.wait(batch_seconds):
            now = time.monotonic()
            due += rate_per_minute * (now - last) / 60
            last = now
            events = simulator.advance(int(due))
            due -= int(due)
            batch += 1
            pushed = {platform: simulator.push_webhooks(platform, url, secret)
                      for platform, (url, secret) in targets.items()}
            log.info("simulate=batch batch=%d %s", batch, batch_summary(events, pushed))
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
        log.info("simulate=stopped batches=%d", batch)


def batch_summary(events, pushed: dict) -> str:
    """`events=12 new=4 pay=3 ... webhooks=shopify:2/2` — key=value, one line."""
    kinds = Counter(event.kind for event in events)
    parts = [f"events={len(events)}"] + [f"{kind}={count}" for kind, count in sorted(kinds.items())]
    if pushed:
        parts.append("webhooks=" + ",".join(
            f"{platform}:{sum(1 for result in results if result.status and 200 <= result.status < 300)}/{len(results)}"
            for platform, results in pushed.items()))
    return " ".join(parts)
