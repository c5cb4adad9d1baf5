"""The invoicing provider (诺诺 / 百望 / 乐企 style): submit with our serial → accepted → poll (or a callback) →
issued with a 20-digit number and PDF/OFD/XML links, or failed with the provider's reason (购方税号有误, 超授信额度).
Idempotent by our serial: a second submit of the same serial is answered by querying it.

`provider_for(config)` gives the adapter the app is configured with; shared/finance/providers/nuonuo.py speaks the
诺诺 open platform's shapes (nuonuo.OpeMplatform.requestBillingNew / queryInvoiceResult), which the simulator in
devtools/simulators/invoicing.py speaks too.
"""
from dataclasses import dataclass, field
from decimal import Decimal


class ProviderTimeout(Exception):
    """The provider did not answer in time: what happened is unknown, so the next step is a query, never a blind
    resubmit."""


class ProviderError(Exception):
    """The provider answered with something we cannot read (not JSON, HTTP 5xx)."""


@dataclass
class ProviderResult:
    serial: str
    status: str  # accepted | issuing | issued | failed | unknown (the provider does not know the serial)
    provider_serial: str | None = None
    number: str | None = None
    issued_at: str | None = None
    pdf_url: str | None = None
    ofd_url: str | None = None
    xml_url: str | None = None
    pdf_bytes: bytes | None = None
    reason: str | None = None
    raw: dict = field(default_factory=dict)


@dataclass
class RedResult:
    """The provider's answer about a 红字确认单 (and its red invoice)."""
    serial: str
    status: str  # submitted | confirmed | issued | refused | unknown (the provider does not know the serial)
    confirmation_no: str | None = None
    number: str | None = None
    reason: str | None = None
    raw: dict = field(default_factory=dict)
    pdf_url: str | None = None  # the provider's own PDF of the issued red invoice, as for a blue one
    pdf_bytes: bytes | None = None


@dataclass(frozen=True)
class CreditLine:
    """授信额度: what the tax bureau lets the seller invoice this month (tax-exclusive amount)."""
    total: Decimal
    used: Decimal

    @property
    def remaining(self) -> Decimal:
        return self.total - self.used


def provider_for(config):
    from shared.finance.providers.nuonuo import NuonuoProvider

    return NuonuoProvider(base_url=config["INVOICE_PROVIDER_URL"], app_key=config["INVOICE_PROVIDER_APP_KEY"],
                          app_secret=config["INVOICE_PROVIDER_APP_SECRET"],
                          seller_tax_id=config["INVOICE_SELLER_TAX_ID"],
                          timeout=float(config.get("INVOICE_PROVIDER_TIMEOUT", 10)))
