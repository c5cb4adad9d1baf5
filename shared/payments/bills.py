"""The providers' daily bills, read into rows to reconcile; a row that cannot be read is reported with its line
number and the others still count.

WeChat Pay trade bill (交易账单, bill_type ALL; API v3 /v3/bill/tradebill then the download URL): CSV, a header line
of column names, then one line per trade with every field prefixed by a backquote (`) so spreadsheet tools keep
long numbers as text, then the summary header `总交易单数,应结订单总金额,...` and one summary line. A payment is
交易状态 SUCCESS (its 订单金额); a refund is REFUND (its 退款金额, with 微信退款单号 / 商户退款单号).

Alipay 业务明细 (from the bill download URL of alipay.data.dataservice.bill.downloadurl.query, bill_type trade):
GBK CSV, `#` comment lines around the table (`#支付宝业务明细查询`, the account, the dates, the `业务明细列表`
markers, the totals, the export time), a header line, values padded with tabs. 业务类型 交易 is a payment of
订单金额（元）; 退款 is a refund (a negative amount, with 退款批次号/请求号).

Sources: pay.weixin.qq.com "申请交易账单" and its sample file, opendocs.alipay.com "查询对账单下载地址" and sample
bills; the public SDK tests named in tests/fixtures/payments/SOURCES.md.
"""
import csv
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from shared.payments import PaymentMessageError

BEIJING = ZoneInfo("Asia/Shanghai")
WECHAT_SUMMARY = "总交易单数"
WECHAT_COLUMNS = {"at": "交易时间", "transaction_id": "微信订单号", "out_trade_no": "商户订单号", "state": "交易状态",
                  "amount": "订单金额", "refund_id": "微信退款单号", "out_refund_no": "商户退款单号",
                  "refund_amount": "退款金额"}
ALIPAY_COLUMNS = {"transaction_id": "支付宝交易号", "out_trade_no": "商户订单号", "kind": "业务类型",
                  "at": "完成时间", "amount": "订单金额（元）", "refund_id": "退款批次号/请求号"}
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class BillRow:
    line_no: int
    kind: str  # payment, refund
    out_trade_no: str
    transaction_id: str
    amount: Decimal  # positive, yuan
    at: datetime | None
    refund_id: str | None = None


@dataclass
class Bill:
    provider: str
    rows: list
    problems: list  # (line number, reason)
    summary: dict


def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise PaymentMessageError("bad_encoding", "the bill is neither UTF-8 nor GBK text")


def _amount(value: str) -> Decimal:
    try:
        amount = Decimal(value.replace(",", "").strip())
    except InvalidOperation:
        raise ValueError(f"{value[:20]!r} is not an amount")
    if not amount.is_finite() or amount != amount.quantize(CENT):
        raise ValueError(f"{value[:20]!r} is not an amount in yuan")
    return amount


def _time(value: str) -> datetime:
    """yyyy-MM-dd HH:mm:ss, Beijing time (fromisoformat: strptime costs ten times as much over 100,000 lines)."""
    value = value.strip()
    try:
        if len(value) != 19 or value[10] != " ":
            raise ValueError
        return datetime.fromisoformat(value).replace(tzinfo=BEIJING)
    except ValueError:
        raise ValueError(f"{value[:25]!r} is not a time (yyyy-MM-dd HH:mm:ss)")


def _columns(header: list[str], wanted: dict, provider: str) -> dict[str, int]:
    names = [name.strip().lstrip("`") for name in header]
    missing = [column for column in wanted.values() if column not in names]
    if missing:
        raise PaymentMessageError("bad_header", f"the {provider} bill has no column {', '.join(missing)}")
    return {key: names.index(column) for key, column in wanted.items()}


def read_wechat_trade_bill(data: bytes | str) -> Bill:
    """A WeChat Pay trade bill (ALL) → payment and refund rows, the unreadable lines, the provider's summary."""
    lines = _text(data).splitlines()
    if not lines:
        raise PaymentMessageError("empty_bill", "the bill is empty")
    columns = _columns(next(csv.reader([lines[0]])), WECHAT_COLUMNS, "WeChat Pay")
    width = len(next(csv.reader([lines[0]])))
    rows, problems, summary = [], [], {}
    for number, fields in enumerate(csv.reader(lines[1:]), start=2):
        if not fields or not any(field.strip() for field in fields):
            continue
        if fields[0].strip() == WECHAT_SUMMARY:
            values = next(csv.reader(lines[number:number + 1]), [])
            summary = {name.strip(): value.strip().lstrip("`") for name, value in zip(fields, values)}
            break
        if len(fields) != width:
            problems.append((number, f"{len(fields)} fields, the header has {width}"))
            continue
        value = {}
        for key, index in columns.items():
            field = fields[index]
            if field[:1] != "`":
                break
            value[key] = field[1:].strip()
        if len(value) != len(columns):
            problems.append((number, "a field without the leading backquote"))
            continue
        try:
            at = _time(value["at"])
            if value["state"] == "REFUND":
                if not value["refund_id"]:
                    raise ValueError("a refund without 微信退款单号")
                rows.append(BillRow(number, "refund", value["out_trade_no"], value["transaction_id"],
                                    abs(_amount(value["refund_amount"])), at, value["refund_id"]))
            elif value["state"] == "SUCCESS":
                if not value["out_trade_no"] or not value["transaction_id"]:
                    raise ValueError("a payment without 商户订单号 or 微信订单号")
                rows.append(BillRow(number, "payment", value["out_trade_no"], value["transaction_id"],
                                    _amount(value["amount"]), at))
            # other states (REVOKED, NOTPAY...) move no money
        except ValueError as error:
            problems.append((number, str(error)))
    return Bill("wechatpay", rows, problems, summary)


def read_alipay_bill(data: bytes | str) -> Bill:
    """An Alipay 业务明细 bill → payment and refund rows, the unreadable lines, the totals lines."""
    lines = _text(data).splitlines()
    header_at = next((index for index, line in enumerate(lines)
                      if line.strip() and not line.startswith("#")), None)
    if header_at is None:
        raise PaymentMessageError("empty_bill", "the bill has no table")
    header = [name.strip() for name in next(csv.reader([lines[header_at]]))]
    columns = _columns(header, ALIPAY_COLUMNS, "Alipay")
    rows, problems, summary = [], [], {}
    for offset, line in enumerate(lines[header_at + 1:], start=header_at + 2):
        if not line.strip():
            continue
        if line.startswith("#"):
            if "合计" in line:
                name, _sep, rest = line.lstrip("#").partition("：")
                summary[name] = rest
            continue
        fields = [field.strip() for field in next(csv.reader([line]))]
        if len(fields) < len(header) - 1:  # the last column (备注) may be cut off
            problems.append((offset, f"{len(fields)} fields, the header has {len(header)}"))
            continue
        value = {key: fields[index] if index < len(fields) else "" for key, index in columns.items()}
        try:
            amount = _amount(value["amount"])
            at = _time(value["at"])
            if not value["out_trade_no"] or not value["transaction_id"]:
                raise ValueError("a row without 商户订单号 or 支付宝交易号")
            if value["kind"] == "退款":
                rows.append(BillRow(offset, "refund", value["out_trade_no"], value["transaction_id"], abs(amount), at,
                                    value["refund_id"] or None))
            elif value["kind"] == "交易":
                rows.append(BillRow(offset, "payment", value["out_trade_no"], value["transaction_id"], amount, at))
            else:
                raise ValueError(f"业务类型 {value['kind'][:10]!r} is neither 交易 nor 退款")
        except ValueError as error:
            problems.append((offset, str(error)))
    return Bill("alipay", rows, problems, summary)


def read_bill(provider: str, data: bytes | str) -> Bill:
    if provider == "wechatpay":
        return read_wechat_trade_bill(data)
    if provider == "alipay":
        return read_alipay_bill(data)
    raise PaymentMessageError("unknown_provider", f"no bill format for {provider!r}")


# --- writing bills (the simulator, the benchmark, tests) ------------------------------------------------------

WECHAT_HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
                 "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,"
                 "商户数据包,手续费,费率,订单金额,申请退款金额,费率备注")
ALIPAY_HEADER = ("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,"
                 "订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,"
                 "商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注")


def write_wechat_trade_bill(entries, app_id: str = "wx8888888888888888", mch_id: str = "1900000109") -> str:
    """entries: (time text, kind, out_trade_no, transaction_id, amount text[, refund id]) → the bill's text."""
    out = [WECHAT_HEADER]
    paid = refunded = Decimal(0)
    for at, kind, out_trade_no, transaction_id, amount, *rest in entries:
        refund = kind == "refund"
        fee = (Decimal(amount) * Decimal("0.006")).quantize(Decimal("0.00001"))
        fields = [at, app_id, mch_id, "0", "", transaction_id, out_trade_no, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "JSAPI",
                  "REFUND" if refund else "SUCCESS", "OTHERS", "CNY", "0.00" if refund else amount, "0.00",
                  rest[0] if refund else "0", f"R{out_trade_no}" if refund else "0", amount if refund else "0.00",
                  "0.00", "ORIGINAL" if refund else "", "SUCCESS" if refund else "", "龙井茶", "",
                  f"-{fee}" if refund else str(fee), "0.60%", "0.00" if refund else amount,
                  amount if refund else "0.00", ""]
        out.append(",".join("`" + field for field in fields))
        paid += 0 if refund else Decimal(amount)
        refunded += Decimal(amount) if refund else 0
    out.append("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额")
    out.append(f"`{len(out) - 2},`{paid:.2f},`{refunded:.2f},`0.00,`0.00000,`{paid:.2f},`{refunded:.2f}")
    return "\r\n".join(out) + "\r\n"


def write_alipay_bill(entries, account: str = "20881234567890120156", day: str = "2026年12月02日") -> bytes:
    """entries: (time text, kind, out_trade_no, trade_no, amount text[, refund id]) → the bill, GBK as Alipay's."""
    out = ["#支付宝业务明细查询", f"#账号：[{account}]",
           f"#起始日期：[{day} 00:00:00]   终止日期：[{day} 23:59:59]",
           "#-----------------------------------------业务明细列表----------------------------------------",
           ALIPAY_HEADER]
    paid = refunded = Decimal(0)
    count = refunds = 0
    for at, kind, out_trade_no, trade_no, amount, *rest in entries:
        refund = kind == "refund"
        signed = f"-{amount}" if refund else amount
        fields = [trade_no, out_trade_no, "退款" if refund else "交易", "龙井茶", at, at, "", "", "", "",
                  "张**(138****5678)", signed, signed, "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00", "0.00",
                  rest[0] if refund else "", "0.00", "0.00", ""]
        out.append(",".join(field + "\t" for field in fields))
        if refund:
            refunds, refunded = refunds + 1, refunded + Decimal(amount)
        else:
            count, paid = count + 1, paid + Decimal(amount)
    out += ["#-----------------------------------------业务明细列表结束------------------------------------",
            f"#交易合计：{count}笔，商家实收共{paid:.2f}元，商家优惠共0.00元",
            f"#退款合计：{refunds}笔，商家实收退款共-{refunded:.2f}元，商家优惠退款共0.00元",
            "#导出时间：[2026年12月03日 06:27:10]"]
    return ("\r\n".join(out) + "\r\n").encode("gb18030")
