"""The invoicing simulator: a 诺诺-style open platform on loopback (shared/finance/providers/nuonuo.py speaks it).

    sim = InvoicingSimulator(credit_total=Decimal("100000.00"))
    base = sim.start()
    ...                              # requestBillingNew → accepted; queryInvoiceResult → 开票中, then 开票完成
    sim.stop()

It refuses what a real provider refuses: a buyer tax id that is not a plausible 统一社会信用代码 / taxpayer number
(购方税号有误), an invoice over the remaining credit line (超授信额度), a body whose signature does not match. A
serial it has seen is answered 订单编号重复 (the adapter then queries). For tests it can be told to hold the next
answer past the client's timeout (`time_out(method)`) or to accept a request twice under two provider serials
(`answer_twice_next`: the second answer is a duplicate the caller must not apply twice). Issuing happens on the
`issue_after_polls`-th query (0: at once), or after `issue_after_seconds`.

With `callback_url` (e.g. http://127.0.0.1:5000/hooks/invoicing/nuonuo) it also pushes, as a provider does, every
invoice it issues (or fails) to that URL: the queryInvoiceResult row as JSON, signed with the app secret in
X-Nuonuo-Sign, from a background thread, sent again (up to `push_attempts` times) until it is answered 200 with
code E0000. With a callback URL and `issue_after_seconds`, invoices are issued when due without being polled.
`pushes` records each delivery (serial, HTTP status or the error) for tests.
"""
import base64
import hashlib
import hmac
import itertools
import json
import queue
import re
import threading
import time
from decimal import Decimal

import httpx

from werkzeug.wrappers import Request, Response

from devtools.simulators.loopback import LoopbackServing
from shared.timekeeping import utc_now

TAX_ID = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$|^[0-9A-Z]{15,20}$")
# A PDF the simulator "sends" with an issued invoice (the provider's own PDF, kept by the platform).
_NUMBERS = itertools.count(1)  # numbers unique across simulators in one process
TINY_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n" \
           b"trailer<</Root 1 0 R>>\n%%EOF\n"
RED_PDF = TINY_PDF.replace(b"%PDF-1.4\n", b"%PDF-1.4\n% red invoice (simulator)\n")  # a red's, told apart


class InvoicingSimulator(LoopbackServing):
    thread_name = "invoicing-simulator"

    def __init__(self, app_key: str = "demo-app-key", app_secret: str = "demo-app-secret",
                 credit_total: Decimal = Decimal("1000000.00"), issue_after_polls: int = 1,
                 issue_after_seconds: float | None = None, send_pdf: bool = True, number_prefix: str = "2631",
                 callback_url: str | None = None, push_attempts: int = 5):
        self._init_serving()
        self.callback_url, self.push_attempts = callback_url, push_attempts
        self.pushes: list[dict] = []  # {"serial", "status": HTTP status or None, "error"}, one per delivery attempt
        self._outbox: queue.Queue = queue.Queue()
        self._pusher: threading.Thread | None = None
        self.app_key, self.app_secret = app_key, app_secret
        self.credit_total, self.credit_used = Decimal(credit_total), Decimal("0.00")
        self.issue_after_polls, self.issue_after_seconds = issue_after_polls, issue_after_seconds
        self.send_pdf, self.number_prefix = send_pdf, number_prefix
        self.invoices: dict[str, dict] = {}  # orderNo → what we hold
        self.requests: list[tuple[str, dict]] = []  # (method, content), for tests
        self.timeouts: dict[str, int] = {}  # method → how many next answers to hold past the client's timeout
        self.timeout_seconds = 3.0
        self.answer_twice_next = 0
        # 红字确认单: billNo → what we hold; the buyer's side confirms on the `confirm_after_polls`-th query, or
        # refuses with `refuse_red_next` (the reason) when set
        self.reds: dict[str, dict] = {}
        self.confirm_after_polls = 1
        self.refuse_red_next: str | None = None
        self._sequence = 0
        self._lock = threading.Lock()

    # -- the HTTP side
    def wsgi_app(self, environ, start_response):
        request = Request(environ)
        if request.path != "/open/v1/services" or request.method != "POST":
            return Response("not found", status=404)(environ, start_response)
        body = request.get_data()
        expected = base64.b64encode(hmac.new(self.app_secret.encode(), body, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(request.headers.get("X-Nuonuo-Sign", ""), expected):
            return self._json({"code": "E0001", "describe": "签名错误", "result": None})(environ, start_response)
        method = request.headers.get("method", "")
        try:
            content = json.loads(json.loads(body)["content"])
        except (ValueError, KeyError, TypeError):
            return self._json({"code": "E0002", "describe": "报文格式错误", "result": None})(environ, start_response)
        with self._lock:
            self.requests.append((method, content))
            hold = self.timeouts.get(method, 0) > 0
            if hold:
                self.timeouts[method] -= 1
            answer = self._answer(method, content)
        if hold:  # the work is done (as at a real provider), but the answer comes too late for the client
            self._stopping.wait(self.timeout_seconds)
        return self._json(answer)(environ, start_response)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        base = super().start(host, port)
        if self.callback_url:
            self._pusher = threading.Thread(target=self._push_loop, name="invoicing-simulator-push", daemon=True)
            self._pusher.start()
        return base

    def stop(self) -> None:
        super().stop()  # sets _stopping: the pusher ends after the push in hand
        if self._pusher is not None:
            self._pusher.join(timeout=10)
            self._pusher = None

    def _push_loop(self) -> None:
        """Issue what is due (issue_after_seconds) and deliver the pushes, each until answered E0000."""
        with httpx.Client(timeout=5.0) as client:
            while not self._stopping.is_set():
                if self.issue_after_seconds is not None:
                    with self._lock:
                        now = time.monotonic()
                        for serial, held in list(self.invoices.items()):
                            if held["status"] == "20" and now - held["accepted_at"] >= self.issue_after_seconds:
                                self._issue(serial)
                try:
                    serial, attempt = self._outbox.get(timeout=0.05)
                except queue.Empty:
                    continue
                with self._lock:
                    row = self._push_row(serial)
                body = json.dumps(row, ensure_ascii=False).encode()
                signature = base64.b64encode(hmac.new(self.app_secret.encode(), body, hashlib.sha256).digest())
                try:
                    answer = client.post(self.callback_url, content=body,
                                         headers={"Content-Type": "application/json",
                                                  "X-Nuonuo-Sign": signature.decode()})
                    delivered = answer.status_code == 200 and (answer.json() or {}).get("code") == "E0000"
                    self.pushes.append({"serial": serial, "status": answer.status_code, "error": None})
                except (httpx.HTTPError, ValueError) as error:
                    delivered = False
                    self.pushes.append({"serial": serial, "status": None, "error": f"{type(error).__name__}"})
                if not delivered and attempt + 1 < self.push_attempts:
                    self._stopping.wait(min(0.2 * 2 ** attempt, 5.0))  # as providers do: again, later
                    self._outbox.put((serial, attempt + 1))

    def _push_row(self, serial: str) -> dict:
        """The row a push carries: what a query would answer, without counting as a poll."""
        row = self._row(serial)
        self.invoices[serial]["polls"] -= 1
        return row

    def _queue_push(self, serial: str) -> None:
        if self.callback_url:
            self._outbox.put((serial, 0))

    @staticmethod
    def _json(payload: dict) -> Response:
        return Response(json.dumps(payload, ensure_ascii=False), content_type="application/json; charset=utf-8")

    def _answer(self, method: str, content: dict) -> dict:
        if method == "nuonuo.OpeMplatform.requestBillingNew":
            return self._request_billing(content.get("order") or {})
        if method == "nuonuo.OpeMplatform.queryInvoiceResult":
            return {"code": "E0000", "describe": "获取成功",
                    "result": [self._row(no) for no in content.get("orderNos") or [] if no in self.invoices]}
        if method == "nuonuo.OpeMplatform.queryCreditLine":
            return {"code": "E0000", "describe": "获取成功",
                    "result": {"totalAmount": str(self.credit_total), "usedAmount": str(self.credit_used),
                               "remainingAmount": str(self.credit_total - self.credit_used)}}
        if method == "nuonuo.OpeMplatform.saveInvoiceRedConfirm":
            return self._red_confirm(content.get("bill") or {})
        if method == "nuonuo.OpeMplatform.queryInvoiceRedConfirm":
            return {"code": "E0000", "describe": "获取成功",
                    "result": [self._red_row(no) for no in content.get("billNos") or [] if no in self.reds]}
        if method == "nuonuo.OpeMplatform.fastInvoiceRed":
            return self._issue_red(content.get("billNo") or "")
        return {"code": "E0003", "describe": f"未知的方法 {method}", "result": None}

    # -- red-letter reversal (红字)
    def _blue(self, number: str) -> dict | None:
        return next((held for held in self.invoices.values() if held["number"] == number and held["status"] == "2"),
                    None)

    def red_remaining(self, number: str) -> Decimal:
        """What of a blue invoice (tax-inclusive) no live 确认单 reverses yet."""
        blue = self._blue(number)
        gross = sum((Decimal(d["taxIncludedAmount"]) for d in blue["order"].get("invoiceDetail") or []),
                    Decimal("0"))
        reserved = sum((-red["gross"] for red in self.reds.values()
                        if red["blue"] == number and red["status"] in ("01", "04")), Decimal("0"))
        return gross - reserved

    def _red_confirm(self, bill: dict) -> dict:
        serial = bill.get("billNo") or ""
        if not serial:
            return {"code": "E9101", "describe": "确认单编号不能为空", "result": None}
        if serial in self.reds:
            return {"code": "E9106", "describe": "确认单编号重复", "result": None}
        number = bill.get("blueInvoiceNumber") or ""
        if self._blue(number) is None:
            return {"code": "E9201", "describe": f"蓝字发票 {number} 不存在或未开具", "result": None}
        try:
            gross = Decimal(bill.get("totalGross"))
        except (ArithmeticError, TypeError, ValueError):
            return {"code": "E0002", "describe": "报文格式错误：totalGross", "result": None}
        if gross >= 0:
            return {"code": "E9203", "describe": "红字确认单金额须为负数", "result": None}
        remaining = self.red_remaining(number)
        if -gross > remaining:
            return {"code": "E9202", "describe": f"红冲金额超过蓝票剩余可冲红金额：剩余 {remaining}，本次 {-gross}",
                    "result": None}
        self._sequence += 1
        self.reds[serial] = {"bill": bill, "blue": number, "gross": gross, "uuid": f"RED{self._sequence:017d}",
                             "status": "01", "polls": 0, "number": None, "msg": "待购方确认",
                             "refuse": self.refuse_red_next}
        self.refuse_red_next = None
        return {"code": "E0000", "describe": "红字确认单提交成功",
                "result": {"billUuid": self.reds[serial]["uuid"], "billStatus": "01"}}

    def _red_row(self, serial: str) -> dict:
        red = self.reds[serial]
        red["polls"] += 1
        if red["status"] == "01" and red["polls"] >= self.confirm_after_polls:
            if red["refuse"]:
                red["status"], red["msg"] = "02", red["refuse"]
            else:
                red["status"], red["msg"] = "04", "购方已确认"
        return {"billNo": serial, "billUuid": red["uuid"], "billStatus": red["status"], "billStatusMsg": red["msg"],
                "blueInvoiceNumber": red["blue"], "redInvoiceNumber": red["number"] or "", **self._red_pdf(red)}

    def _red_pdf(self, red: dict) -> dict:
        """An issued red invoice's own PDF, in the fields a blue one's query row uses (pdfUrl, pdfContent)."""
        if red["number"] is None:
            return {}
        fields = {"pdfUrl": f"{self.base_url or 'http://127.0.0.1'}/fp/{red['uuid']}.pdf"}
        if self.send_pdf:
            fields["pdfContent"] = base64.b64encode(RED_PDF).decode()
        return fields

    def _issue_red(self, serial: str) -> dict:
        red = self.reds.get(serial)
        if red is None:
            return {"code": "E9204", "describe": "红字确认单不存在", "result": None}
        if red["status"] != "04":
            return {"code": "E9205", "describe": f"红字确认单未确认：{red['msg']}", "result": None}
        if red["number"] is None:
            red["number"] = f"{self.number_prefix}{utc_now():%y}{next(_NUMBERS):0>14d}"
        return {"code": "E0000", "describe": "红字发票开具成功",
                "result": {"invoiceNumber": red["number"], **self._red_pdf(red)}}

    def _request_billing(self, order: dict) -> dict:
        serial = order.get("orderNo") or ""
        if not serial:
            return {"code": "E9101", "describe": "订单编号不能为空", "result": None}
        if serial in self.invoices and not self.answer_twice_next:
            return {"code": "E9106", "describe": "订单编号重复", "result": None}
        tax_id = order.get("buyerTaxNum") or ""
        if order.get("invoiceLine") == "bs" and not tax_id or tax_id and not TAX_ID.match(tax_id):
            return {"code": "E9102", "describe": "购方税号有误", "result": None}
        amount = sum((Decimal(d["taxExcludedAmount"]) for d in order.get("invoiceDetail") or []), Decimal("0"))
        if amount > self.credit_total - self.credit_used:
            return {"code": "E9103", "describe": f"超授信额度：剩余 {self.credit_total - self.credit_used}，"
                                                 f"本次 {amount}", "result": None}
        if self.answer_twice_next and serial in self.invoices:
            self.answer_twice_next -= 1
            self._sequence += 1
            return {"code": "E0000", "describe": "开票提交成功",
                    "result": {"invoiceSerialNum": f"SIM{self._sequence:017d}"}}
        self._sequence += 1
        self.credit_used += amount
        self.invoices[serial] = {"order": order, "serialNo": f"SIM{self._sequence:017d}", "polls": 0,
                                 "accepted_at": time.monotonic(), "status": "20", "number": None,
                                 "amount": amount}
        if self.issue_after_polls == 0 and self.issue_after_seconds is None:
            self._issue(serial)
        return {"code": "E0000", "describe": "开票提交成功",
                "result": {"invoiceSerialNum": self.invoices[serial]["serialNo"]}}

    def _issue(self, serial: str) -> None:
        held = self.invoices[serial]
        if held["status"] != "20":
            return
        held["status"] = "2"
        held["number"] = f"{self.number_prefix}{utc_now():%y}{next(_NUMBERS):0>14d}"
        held["invoiceTime"] = f"{utc_now():%Y-%m-%d %H:%M:%S}"
        self._queue_push(serial)

    def _row(self, serial: str) -> dict:
        held = self.invoices[serial]
        held["polls"] += 1
        if held["status"] == "20":
            due = (self.issue_after_seconds is not None
                   and time.monotonic() - held["accepted_at"] >= self.issue_after_seconds) \
                or (self.issue_after_seconds is None and held["polls"] >= self.issue_after_polls)
            if due:
                self._issue(serial)
        row = {"serialNo": held["serialNo"], "orderNo": serial, "status": held["status"],
               "statusMsg": {"2": "开票完成（最终状态）", "20": "开票中", "22": "开票失败"}[held["status"]],
               "failCause": held.get("failCause", "")}
        if held["status"] == "2":
            base = f"{self.base_url or 'http://127.0.0.1'}/fp/{held['serialNo']}"
            row.update({"allElectronicInvoiceNumber": held["number"], "invoiceTime": held["invoiceTime"],
                        "pdfUrl": f"{base}.pdf", "ofdUrl": f"{base}.ofd", "xmlUrl": f"{base}.xml"})
            if self.send_pdf:
                row["pdfContent"] = base64.b64encode(TINY_PDF).decode()
        return row

    # -- for tests and the demo
    def time_out(self, method: str = "nuonuo.OpeMplatform.requestBillingNew", times: int = 1,
                 seconds: float = 2.0) -> None:
        """Do the work of the next `times` calls of `method` but answer only after `seconds` (past the client's
        timeout): the caller does not know whether it happened."""
        with self._lock:
            self.timeouts[method] = self.timeouts.get(method, 0) + times
            self.timeout_seconds = seconds

    def fail(self, serial: str, cause: str) -> None:
        """Make a held invoice fail with `cause` (as a provider does after accepting, e.g. a signing failure)."""
        with self._lock:
            held = self.invoices[serial]
            held["status"], held["failCause"] = "22", cause
            self.credit_used -= held["amount"]
            self._queue_push(serial)


def run(host: str = "127.0.0.1", port: int = 5007, **options) -> None:
    """Serve until interrupted (the `orderloom simulate-invoicing` command)."""
    sim = InvoicingSimulator(**options)
    sim.start(host, port)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
