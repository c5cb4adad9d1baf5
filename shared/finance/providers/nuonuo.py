"""A 诺诺 (Nuonuo) open-platform style adapter. Field names follow nuonuo.OpeMplatform.requestBillingNew and
queryInvoiceResult (tests/fixtures/invoicing/README.md names the sources): the body carries senid/nonce/timestamp/
appkey, the request `order` with buyerName/buyerTaxNum/..., orderNo (our serial) and invoiceDetail lines
(goodsName, goodsCode, num, price, taxRate, taxExcludedAmount, tax, taxIncludedAmount, withTaxFlag,
invoiceLineProperty 0 normal / 1 discount line / 2 discounted line); the answer {"code": "E0000", "describe",
"result"}. Query statuses: "2" 开票完成, "20" 开票中, "21" 开票成功签章中, "22" 开票失败, "24" 签章失败.
The signature is an HMAC-SHA256 of the body with the app secret (X-Nuonuo-Sign), a simplification of theirs.
"""
import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from decimal import Decimal

import httpx

from shared.finance.invoice_math import InvoicePart, TAX_FREE_LABELS
from shared.finance.providers import CreditLine, ProviderError, ProviderResult, ProviderTimeout, RedResult

OK = "E0000"
DUPLICATE = "E9106"  # 订单编号重复 (the simulator's code for a serial it has seen; the real code may differ)
STATUS = {"2": "issued", "20": "issuing", "21": "issuing", "22": "failed", "24": "failed"}
INVOICE_LINE = {"normal": "pc", "special": "bs"}  # 数电普票 / 数电专票
# 红字确认单 states (billStatus): 01 待确认, 04 已确认 (our confirmed), 02/03/06 refused or voided by the other party
RED_STATUS = {"01": "submitted", "04": "confirmed", "02": "refused", "03": "refused", "06": "refused"}
FREE_FLAGS = {"exempt": "1", "untaxed": "2"}  # zeroRateFlag: 1 免税, 2 不征税 (0 出口零税率 / blank: taxed)
log = logging.getLogger("orderloom.invoices")


_CLIENTS: dict[tuple, httpx.Client] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(timeout: float) -> httpx.Client:
    """One HTTP client per process and timeout, kept: a new httpx.Client loads the CA store into a fresh SSL context
    (≈ 35 ms here, 88 % of a call to the simulator), and a kept one reuses its connections. Keyed by the process id
    so a forked work horse never shares its parent's sockets."""
    key = (os.getpid(), timeout)
    client = _CLIENTS.get(key)
    if client is None:
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                client = _CLIENTS[key] = httpx.Client(timeout=timeout)
    return client


def pdf_content(row: dict) -> bytes | None:
    """The provider's own PDF an answer carries (pdfContent, base64), None when it sends none; a pdfContent that is not
    base64 raises ValueError."""
    pdf = row.get("pdfContent")
    return base64.b64decode(pdf) if pdf else None


def red_pdf(serial: str, row: dict) -> tuple[str | None, bytes | None]:
    """The PDF link and content of an issued red invoice, in the same fields as a blue one's query row (pdfUrl,
    pdfContent). One that cannot be read is left out (logged): our own PDF of the red is the fallback."""
    try:
        content = pdf_content(row)
    except (ValueError, TypeError):
        log.warning("red serial=%s pdfContent is not base64: ignored", serial)
        content = None
    return row.get("pdfUrl") or None, content


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def order_payload(serial: str, part: InvoicePart, kind: str, buyer: dict, seller_tax_id: str, clerk: str,
                  invoice_date: str) -> dict:
    """The `order` of requestBillingNew for one invoice part."""
    details = []
    for index, line in enumerate(part.lines):
        following = part.lines[index + 1] if index + 1 < len(part.lines) else None
        prop = "1" if line.kind == "discount" else ("2" if following is not None and following.kind == "discount"
                                                   else "0")
        details.append({
            "goodsName": line.name.split("*", 2)[-1] if line.name.startswith("*") else line.name,
            "goodsCode": line.tax_code, "specType": line.spec, "unit": line.unit,
            "num": "" if line.quantity is None else str(line.quantity),
            "price": "" if line.unit_price is None else str(line.unit_price),
            "withTaxFlag": "0", "taxRate": str(Decimal(line.rate) / 100),
            "taxExcludedAmount": str(line.amount), "tax": str(line.tax), "taxIncludedAmount": str(line.gross),
            "invoiceLineProperty": prop,
            "favouredPolicyFlag": "1" if line.tax_free else "0",
            "favouredPolicyName": TAX_FREE_LABELS.get(line.tax_free, "") if line.tax_free else "",
            "zeroRateFlag": FREE_FLAGS.get(line.tax_free, ""),
        })
    return {
        "buyerName": buyer["name"], "buyerTaxNum": buyer.get("tax_id") or "",
        "buyerTel": buyer.get("phone") or "", "buyerAddress": buyer.get("address") or "",
        "buyerAccount": " ".join(filter(None, (buyer.get("bank"), buyer.get("account")))),
        "email": buyer.get("email") or "",
        "salerTaxNum": seller_tax_id, "orderNo": serial, "invoiceDate": invoice_date, "clerk": clerk,
        "invoiceType": "1", "invoiceLine": INVOICE_LINE[kind], "pushMode": "-1",
        "invoiceDetail": details,
    }


class NuonuoProvider:
    def __init__(self, base_url: str, app_key: str, app_secret: str, seller_tax_id: str, timeout: float = 10.0,
                 transport=None):
        self.base_url = base_url.rstrip("/")
        self.app_key, self.app_secret, self.seller_tax_id = app_key, app_secret, seller_tax_id
        self.timeout = timeout
        self.transport = transport

    def _call(self, method: str, content: dict) -> dict:
        body = json.dumps({"senid": secrets.token_hex(16), "nonce": str(secrets.randbelow(10**8)).zfill(8),
                           "timestamp": str(int(time.time())), "appkey": self.app_key,
                           "content": json.dumps(content, ensure_ascii=False)}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "method": method, "accessToken": self.app_key,
                   "userTax": self.seller_tax_id, "X-Nuonuo-Sign": sign(self.app_secret, body)}
        try:
            if self.transport is not None:  # tests: a mock transport, a client of its own
                with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                    response = client.post(f"{self.base_url}/open/v1/services", content=body, headers=headers)
            else:
                response = _client(self.timeout).post(f"{self.base_url}/open/v1/services", content=body,
                                                       headers=headers)
        except httpx.TimeoutException as error:
            raise ProviderTimeout(f"{method}: no answer within {self.timeout}s") from error
        except httpx.TransportError as error:
            raise ProviderTimeout(f"{method}: {type(error).__name__}: {error}") from error
        if response.status_code >= 500:
            raise ProviderError(f"{method}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as error:
            raise ProviderError(f"{method}: the answer is not JSON") from error

    def submit(self, serial: str, order: dict) -> ProviderResult:
        """Ask for an invoice under our serial; a serial the provider already has is resolved by querying it."""
        answer = self._call("nuonuo.OpeMplatform.requestBillingNew", {"order": order})
        if answer.get("code") == OK:
            result = answer.get("result") or {}
            return ProviderResult(serial=serial, status="accepted", provider_serial=result.get("invoiceSerialNum"),
                                  raw=answer)
        if answer.get("code") == DUPLICATE:
            return self.query(serial)
        return ProviderResult(serial=serial, status="failed", reason=answer.get("describe") or answer.get("code"),
                              raw=answer)

    def query(self, serial: str) -> ProviderResult:
        answer = self._call("nuonuo.OpeMplatform.queryInvoiceResult", {"orderNos": [serial],
                                                                        "isOfferInvoiceDetail": "0"})
        if answer.get("code") != OK:
            raise ProviderError(f"queryInvoiceResult: {answer.get('code')} {answer.get('describe')}")
        found = [row for row in answer.get("result") or [] if row.get("orderNo") == serial]
        if not found:
            return ProviderResult(serial=serial, status="unknown", raw=answer)
        return self.read_result(found[0])

    @staticmethod
    def read_result(row: dict) -> ProviderResult:
        """A queryInvoiceResult row (or a callback's content) as our result."""
        status = STATUS.get(str(row.get("status")), "issuing")
        return ProviderResult(
            serial=row.get("orderNo"), status=status, provider_serial=row.get("serialNo"),
            number=row.get("allElectronicInvoiceNumber") or None, issued_at=row.get("invoiceTime"),
            pdf_url=row.get("pdfUrl") or None, ofd_url=row.get("ofdUrl") or None, xml_url=row.get("xmlUrl") or None,
            pdf_bytes=pdf_content(row),
            reason=(row.get("failCause") or row.get("statusMsg")) if status == "failed" else None, raw=row)

    def credit_line(self) -> CreditLine:
        """授信额度 (the query's name and fields are this adapter's; providers expose it under various names)."""
        answer = self._call("nuonuo.OpeMplatform.queryCreditLine", {"taxnum": self.seller_tax_id})
        if answer.get("code") != OK:
            raise ProviderError(f"queryCreditLine: {answer.get('code')} {answer.get('describe')}")
        result = answer["result"]
        return CreditLine(total=Decimal(result["totalAmount"]), used=Decimal(result["usedAmount"]))

    # -- red-letter reversal (红字): apply a 红字确认单, query it, issue the red invoice once it is confirmed
    # (method names after 诺诺's 数电 红字确认单 calls; the simulator speaks them)
    def apply_red(self, serial: str, bill: dict) -> RedResult:
        """Apply a 红字确认单 under our serial (billNo); one the provider already has is resolved by querying it."""
        answer = self._call("nuonuo.OpeMplatform.saveInvoiceRedConfirm", {"bill": bill})
        if answer.get("code") == OK:
            result = answer.get("result") or {}
            return RedResult(serial=serial, status=RED_STATUS.get(str(result.get("billStatus")), "submitted"),
                             confirmation_no=result.get("billUuid"), raw=answer)
        if answer.get("code") == DUPLICATE:
            return self.query_red(serial)
        return RedResult(serial=serial, status="refused", reason=answer.get("describe") or answer.get("code"),
                         raw=answer)

    def query_red(self, serial: str) -> RedResult:
        answer = self._call("nuonuo.OpeMplatform.queryInvoiceRedConfirm", {"billNos": [serial]})
        if answer.get("code") != OK:
            raise ProviderError(f"queryInvoiceRedConfirm: {answer.get('code')} {answer.get('describe')}")
        found = [row for row in answer.get("result") or [] if row.get("billNo") == serial]
        if not found:
            return RedResult(serial=serial, status="unknown", raw=answer)
        row = found[0]
        status = RED_STATUS.get(str(row.get("billStatus")), "submitted")
        if status == "confirmed" and row.get("redInvoiceNumber"):
            status = "issued"
        pdf_url, pdf_bytes = red_pdf(serial, row) if status == "issued" else (None, None)
        return RedResult(serial=serial, status=status, confirmation_no=row.get("billUuid"),
                         number=row.get("redInvoiceNumber") or None,
                         reason=row.get("billStatusMsg") if status == "refused" else None,
                         raw={k: v for k, v in row.items() if k != "pdfContent"}, pdf_url=pdf_url, pdf_bytes=pdf_bytes)

    def issue_red(self, serial: str, confirmation_no: str) -> RedResult:
        """Issue the red invoice of a confirmed 确认单; asked again, the provider answers with the same number."""
        answer = self._call("nuonuo.OpeMplatform.fastInvoiceRed", {"billNo": serial, "billUuid": confirmation_no})
        if answer.get("code") == OK:
            result = answer.get("result") or {}
            pdf_url, pdf_bytes = red_pdf(serial, result) if result.get("invoiceNumber") else (None, None)
            return RedResult(serial=serial, status="issued" if result.get("invoiceNumber") else "confirmed",
                             confirmation_no=confirmation_no, number=result.get("invoiceNumber") or None,
                             raw={**answer, "result": {k: v for k, v in result.items() if k != "pdfContent"}},
                             pdf_url=pdf_url, pdf_bytes=pdf_bytes)
        return RedResult(serial=serial, status="refused", reason=answer.get("describe") or answer.get("code"),
                         raw=answer)
