"""Group-robot alerts over real HTTP to a loopback receiver: payload shapes, DingTalk signing, limits, failures."""
import base64
import hashlib
import hmac
import logging
import socket
import time

import pytest

from shared.notify import Alert, deliver, render_dingtalk, render_wecom
from shared.notify.robots import WECOM_MARKDOWN_MAX_BYTES, dingtalk_signed_url, truncate_utf8
from tests.robot_receiver import RobotReceiver

OK = {"errcode": 0, "errmsg": "ok"}
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DINGTALK_TOKEN = "tok-123"
SECRET = "SEC0123456789abcdef"

STOCK_ALERT = Alert(title="库存不足：SKU-42", lines=["仓库：上海一号仓", "剩余 3 件，低于阈值 10"])


def expected_sign(secret: str, timestamp: str) -> str:
    """DingTalk's documented algorithm, written out independently of the module under test."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def free_port_with_nothing_listening() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_wecom_markdown_payload_arrives_exactly():
    with RobotReceiver(answer=OK) as receiver:
        result = deliver("wecom", f"{receiver.url}/cgi-bin/webhook/send?key={WECOM_KEY}", STOCK_ALERT)

    assert result.ok and result.status == 200 and result.error is None
    [(path, query, headers, body)] = receiver.requests
    assert path == "/cgi-bin/webhook/send"
    assert query == {"key": WECOM_KEY}
    assert headers["content-type"].startswith("application/json")
    assert body == {
        "msgtype": "markdown",
        "markdown": {"content": '### <font color="warning">[WARNING]</font> 库存不足：SKU-42\n'
                                "仓库：上海一号仓\n剩余 3 件，低于阈值 10"},
    }


def test_wecom_mentions_go_as_text_with_mentioned_mobile_list():
    alert = Alert(title="支付回调失败", lines=["订单 OL-1001"], severity="critical", mention_mobiles=["13800001111"])
    with RobotReceiver() as receiver:
        assert deliver("wecom", f"{receiver.url}/send?key=k", alert).ok

    assert receiver.requests[0].json == {
        "msgtype": "text",
        "text": {"content": "[CRITICAL] 支付回调失败\n订单 OL-1001", "mentioned_mobile_list": ["13800001111"]},
    }


def test_wecom_msgtype_can_be_chosen():
    assert render_wecom(STOCK_ALERT, msgtype="text") == {
        "msgtype": "text", "text": {"content": "[WARNING] 库存不足：SKU-42\n仓库：上海一号仓\n剩余 3 件，低于阈值 10"}}
    info = Alert(title="日报已生成", lines=[], severity="info", mention_mobiles=["13800001111"])
    assert render_wecom(info, msgtype="markdown") == {
        "msgtype": "markdown", "markdown": {"content": '### <font color="info">[INFO]</font> 日报已生成'}}


def test_dingtalk_markdown_payload_and_signature():
    alert = Alert(title="库存不足：SKU-42", lines=["仓库：上海一号仓", "剩余 3 件"], mention_mobiles=["13900002222"])
    before = int(time.time() * 1000)
    with RobotReceiver(answer=OK) as receiver:
        result = deliver("dingtalk", f"{receiver.url}/robot/send?access_token={DINGTALK_TOKEN}", alert, secret=SECRET)
    after = int(time.time() * 1000)

    assert result.ok, result
    [(path, query, _headers, body)] = receiver.requests
    assert path == "/robot/send"
    assert set(query) == {"access_token", "timestamp", "sign"}
    assert query["access_token"] == DINGTALK_TOKEN
    assert before <= int(query["timestamp"]) <= after
    assert query["sign"] == expected_sign(SECRET, query["timestamp"])  # the receiver saw it URL-decoded
    assert body == {
        "msgtype": "markdown",
        "markdown": {"title": "[WARNING] 库存不足：SKU-42",
                     "text": "#### [WARNING] 库存不足：SKU-42\n\n仓库：上海一号仓\n\n剩余 3 件\n\n@13900002222"},
        "at": {"atMobiles": ["13900002222"], "isAtAll": False},
    }


def test_dingtalk_without_secret_sends_the_url_unchanged():
    with RobotReceiver() as receiver:
        assert deliver("dingtalk", f"{receiver.url}/robot/send?access_token=t", STOCK_ALERT).ok
    assert receiver.requests[0].query == {"access_token": "t"}
    assert receiver.requests[0].json["at"] == {"atMobiles": [], "isAtAll": False}


def test_dingtalk_signed_url_is_url_encoded():
    # This secret and time give a signature with '+', '/' and '=' in it, which must travel percent-encoded.
    secret, now_ms = "SECc0ffee", 1700000000000
    raw = expected_sign(secret, str(now_ms))
    assert {"+", "/"} & set(raw) and raw.endswith("=")
    url = dingtalk_signed_url("https://oapi.dingtalk.com/robot/send?access_token=abc", secret, now_ms)
    encoded = raw.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert url == f"https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp={now_ms}&sign={encoded}"


def test_chinese_text_travels_intact_as_utf8():
    alert = Alert(title="退款异常", lines=["买家：张三 🧧", "金额：￥1,280.00"])
    with RobotReceiver() as receiver:
        deliver("wecom", f"{receiver.url}/send?key=k", alert)
        deliver("dingtalk", f"{receiver.url}/robot/send?access_token=t", alert)

    wecom, dingtalk = receiver.requests
    assert "买家：张三 🧧\n金额：￥1,280.00" in wecom.json["markdown"]["content"]
    assert "买家：张三 🧧\n\n金额：￥1,280.00" in dingtalk.json["markdown"]["text"]
    assert "买家：张三 🧧".encode("utf-8") in wecom.raw  # sent as UTF-8 bytes, as both robots require


def test_long_markdown_is_cut_at_4096_utf8_bytes_on_a_character_boundary():
    lines = [f"订单 OL-{n:05d} 已超时未发货，请尽快处理" for n in range(400)]  # far over 4096 bytes
    alert = Alert(title="超时未发货", lines=lines)
    with RobotReceiver() as receiver:
        assert deliver("wecom", f"{receiver.url}/send?key=k", alert).ok

    content = receiver.requests[0].json["markdown"]["content"]
    size = len(content.encode("utf-8"))
    assert WECOM_MARKDOWN_MAX_BYTES - 4 < size <= WECOM_MARKDOWN_MAX_BYTES
    assert content.endswith("…")
    full = render_wecom(Alert(title="超时未发货", lines=lines[:1]))["markdown"]["content"]
    assert content.startswith(full)


def test_dingtalk_truncation_keeps_the_mentions():
    alert = Alert(title="超时", lines=["很长的一行" * 2000], mention_mobiles=["13900002222"])
    text = render_dingtalk(alert)["markdown"]["text"]
    assert len(text.encode("utf-8")) <= 4096
    assert text.endswith("…\n\n@13900002222")


@pytest.mark.parametrize(("text", "limit", "expected"), [
    ("abc", 3, "abc"),
    ("中文字", 9, "中文字"),
    ("中文字", 8, "中…"),  # 3 + 3 bytes of ellipsis; "文" would not fit
    ("ab🧧cd", 8, "ab🧧cd"),
    ("ab🧧cd", 7, "ab…"),  # the 4-byte emoji is not split
    ("中文字", 2, ""),  # no room even for the ellipsis
])
def test_truncate_utf8(text, limit, expected):
    assert truncate_utf8(text, limit) == expected
    assert len(truncate_utf8(text, limit).encode("utf-8")) <= limit


@pytest.mark.parametrize(("answer", "status", "error_part"), [
    ({"errcode": 93000, "errmsg": "invalid webhook url"}, 200, "errcode=93000"),
    ({"errcode": 310000, "errmsg": "sign not match"}, 200, "errcode=310000"),
    ({"errmsg": "ok"}, 200, "errcode=None"),
    ("<html>busy</html>", 200, "not JSON"),
    ({"errcode": 0, "errmsg": "ok"}, 500, "HTTP 500"),
    ("Internal Server Error", 502, "HTTP 502"),
])
def test_a_refusal_is_not_ok(answer, status, error_part):
    with RobotReceiver(answer=answer, status=status) as receiver:
        result = deliver("dingtalk", f"{receiver.url}/robot/send?access_token=t", STOCK_ALERT, secret=SECRET)
    assert result.ok is False
    assert result.status == status
    assert error_part in result.error


def test_set_answer_changes_later_answers():
    with RobotReceiver() as receiver:
        assert deliver("wecom", f"{receiver.url}/send?key=k", STOCK_ALERT).ok
        receiver.set_answer({"errcode": 45009, "errmsg": "api freq out of limit"})
        refused = deliver("wecom", f"{receiver.url}/send?key=k", STOCK_ALERT)
    assert not refused.ok and "45009" in refused.error and "api freq out of limit" in refused.body
    assert len(receiver.requests) == 2


def test_connection_refused_is_reported_not_raised(caplog):
    url = f"http://127.0.0.1:{free_port_with_nothing_listening()}/send?key={WECOM_KEY}"
    with caplog.at_level(logging.WARNING, logger="orderloom.notify"):
        result = deliver("wecom", url, STOCK_ALERT)
    assert result.ok is False and result.status is None and result.body == ""
    assert "ConnectError" in result.error
    assert "robot_alert=failed kind=wecom" in caplog.text
    assert WECOM_KEY not in caplog.text and WECOM_KEY not in result.error  # the key is a credential


def test_timeout_is_reported_not_raised():
    with RobotReceiver(delay=1.0) as receiver:
        result = deliver("dingtalk", f"{receiver.url}/robot/send?access_token=t", STOCK_ALERT, timeout=0.2)
    assert result.ok is False and result.status is None
    assert "Timeout" in result.error


@pytest.mark.parametrize("url", ["", "qyapi.weixin.qq.com/cgi-bin/webhook/send", "http://[::1"])
def test_a_misconfigured_url_is_reported_not_raised(url):
    result = deliver("wecom", url, STOCK_ALERT)
    assert result.ok is False and result.error


def test_programming_errors_still_raise():
    with pytest.raises(ValueError, match="severity"):
        Alert(title="x", lines=[], severity="urgent")
    with pytest.raises(ValueError, match="lists of strings"):
        Alert(title="x", lines="one string would be sent a character a line")
    with pytest.raises(ValueError, match="robot kind"):
        deliver("feishu", "http://127.0.0.1:1/", STOCK_ALERT)
    with pytest.raises(ValueError, match="msgtype"):
        render_wecom(STOCK_ALERT, msgtype="news")
