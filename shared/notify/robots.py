"""Alerts to WeCom (企业微信) and DingTalk (钉钉) group robots, in the JSON shapes their webhooks accept.

WeCom: POST to the robot's webhook URL (https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...).
DingTalk: POST to https://oapi.dingtalk.com/robot/send?access_token=..., signed with timestamp and sign when the
robot uses the "加签" security setting. Both answer {"errcode": 0, "errmsg": "ok"} on success.
"""
import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus

import httpx

log = logging.getLogger("orderloom.notify")

SEVERITIES = ("info", "warning", "critical")
# WeCom markdown has three colours: info (green), comment (grey), warning (orange-red).
WECOM_COLOURS = {"info": "info", "warning": "warning", "critical": "warning"}
WECOM_MARKDOWN_MAX_BYTES = 4096  # documented limit of markdown.content, UTF-8
WECOM_TEXT_MAX_BYTES = 2048  # documented limit of text.content, UTF-8
# DingTalk documents no small limit for markdown; we hold it to WeCom's so an alert reads the same in both.
DINGTALK_MARKDOWN_MAX_BYTES = 4096
ELLIPSIS = "…"
BODY_KEPT_CHARS = 2000  # of a robot's answer, kept in DeliveryResult for the log


@dataclass(frozen=True)
class Alert:
    """What to tell a group: a one-line title, a few lines of detail, and whom to @ by mobile number."""

    title: str
    lines: Sequence[str]
    severity: str = "warning"
    mention_mobiles: Sequence[str] = ()

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}")
        if isinstance(self.lines, str) or isinstance(self.mention_mobiles, str):
            raise ValueError("lines and mention_mobiles are lists of strings, not one string")


@dataclass(frozen=True)
class DeliveryResult:
    """How a delivery went: ok only when the robot answered HTTP 2xx with errcode 0."""

    ok: bool
    status: int | None
    body: str
    error: str | None


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Cut text to at most max_bytes of UTF-8, on a character boundary, ending with an ellipsis when cut."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    room = max_bytes - len(ELLIPSIS.encode("utf-8"))
    if room < 0:  # no space even for the ellipsis
        return encoded[:max(max_bytes, 0)].decode("utf-8", errors="ignore")
    # errors="ignore" drops the partial character a byte cut may leave at the end.
    return encoded[:room].decode("utf-8", errors="ignore") + ELLIPSIS


def _one_line(text: str) -> str:
    """A title is a heading: line breaks inside it would start markdown of their own."""
    return " ".join(str(text).split())


def _label(alert: Alert) -> str:
    return alert.severity.upper()


def render_wecom(alert: Alert, msgtype: str | None = None) -> dict:
    """The WeCom robot payload: markdown, or text when someone is to be @-ed (WeCom markdown cannot @ by mobile).

    Pass msgtype="markdown" or "text" to choose; markdown then drops the mentions.
    """
    msgtype = msgtype or ("text" if alert.mention_mobiles else "markdown")
    title = _one_line(alert.title)
    if msgtype == "markdown":
        colour = WECOM_COLOURS[alert.severity]
        content = "\n".join([f'### <font color="{colour}">[{_label(alert)}]</font> {title}', *map(str, alert.lines)])
        return {"msgtype": "markdown", "markdown": {"content": truncate_utf8(content, WECOM_MARKDOWN_MAX_BYTES)}}
    if msgtype == "text":
        content = "\n".join([f"[{_label(alert)}] {title}", *map(str, alert.lines)])
        text = {"content": truncate_utf8(content, WECOM_TEXT_MAX_BYTES)}
        if alert.mention_mobiles:
            text["mentioned_mobile_list"] = list(alert.mention_mobiles)
        return {"msgtype": "text", "text": text}
    raise ValueError(f"WeCom msgtype must be 'markdown' or 'text', not {msgtype!r}")


def render_dingtalk(alert: Alert) -> dict:
    """The DingTalk robot payload: markdown, with the @-ed mobiles also written in the text (else no one is pinged)."""
    title = f"[{_label(alert)}] {_one_line(alert.title)}"
    # DingTalk markdown needs a blank line between paragraphs; a single newline is folded into a space.
    body = "\n\n".join([f"#### {title}", *map(str, alert.lines)])
    mentions = " ".join(f"@{mobile}" for mobile in alert.mention_mobiles)
    room = DINGTALK_MARKDOWN_MAX_BYTES - (len(f"\n\n{mentions}".encode()) if mentions else 0)
    text = truncate_utf8(body, room) + (f"\n\n{mentions}" if mentions else "")
    return {
        "msgtype": "markdown",
        "markdown": {"title": truncate_utf8(title, 256), "text": text},
        "at": {"atMobiles": list(alert.mention_mobiles), "isAtAll": False},
    }


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The DingTalk "加签" signature before URL encoding: base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}"))."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_signed_url(url: str, secret: str, now_ms: int) -> str:
    """The robot URL with &timestamp=<ms>&sign=<urlencoded signature> appended; DingTalk allows an hour of drift."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={now_ms}&sign={quote_plus(dingtalk_sign(secret, now_ms))}"


def _judge(response: httpx.Response) -> DeliveryResult:
    body = response.text[:BODY_KEPT_CHARS]
    if not response.is_success:
        return DeliveryResult(False, response.status_code, body, f"HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        return DeliveryResult(False, response.status_code, body, "the answer is not JSON")
    if not isinstance(answer, dict) or answer.get("errcode") != 0:
        errcode = answer.get("errcode") if isinstance(answer, dict) else None
        errmsg = answer.get("errmsg") if isinstance(answer, dict) else None
        return DeliveryResult(False, response.status_code, body, f"errcode={errcode} errmsg={errmsg}")
    return DeliveryResult(True, response.status_code, body, None)


def deliver(kind: str, url: str, alert: Alert, secret: str | None = None, timeout: float = 5.0) -> DeliveryResult:
    """Post the alert to a "wecom" or "dingtalk" robot; network trouble comes back as ok=False, never raised.

    The URL carries the robot's key, so it is never logged nor put into the result.
    """
    if kind == "wecom":
        payload, target = render_wecom(alert), url
    elif kind == "dingtalk":
        payload = render_dingtalk(alert)
        target = dingtalk_signed_url(url, secret, int(time.time() * 1000)) if secret else url
    else:
        raise ValueError(f"robot kind must be 'wecom' or 'dingtalk', not {kind!r}")
    try:
        response = httpx.post(target, json=payload, timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is not an HTTPError: a misconfigured robot
        result = DeliveryResult(False, None, "", f"{type(exc).__name__}: {exc}")
    else:
        result = _judge(response)
    if result.ok:
        log.info("robot_alert=sent kind=%s severity=%s", kind, alert.severity)
    else:
        log.warning("robot_alert=failed kind=%s severity=%s status=%s error=%r", kind, alert.severity,
                    result.status, result.error)
    return result
