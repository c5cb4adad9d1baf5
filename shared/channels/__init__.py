"""Channel adapters: each platform's order format read into one canonical order, plus its polling call."""
from shared.channels.base import Adapter
from shared.channels.douyin import DouyinAdapter
from shared.channels.jd import JdAdapter
from shared.channels.pinduoduo import PinduoduoAdapter
from shared.channels.shopify import ShopifyAdapter
from shared.channels.spreadsheet import ImportAdapter
from shared.channels.taobao import TaobaoAdapter
from shared.channels.woocommerce import WooCommerceAdapter

_PLATFORMS = {adapter.kind: adapter for adapter in (
    TaobaoAdapter(), JdAdapter(), PinduoduoAdapter(), DouyinAdapter(), ShopifyAdapter(), WooCommerceAdapter())}
IMPORT = ImportAdapter()


def adapter_for(kind: str) -> Adapter:
    """The adapter for a channel kind; direct channels (offline, own shop, mini program) read imports."""
    return _PLATFORMS.get(kind, IMPORT)


def polls(kind: str) -> bool:
    return kind in _PLATFORMS


def takes_webhooks(kind: str) -> bool:
    adapter = _PLATFORMS.get(kind)
    return adapter is not None and adapter.webhook_signature_header is not None
