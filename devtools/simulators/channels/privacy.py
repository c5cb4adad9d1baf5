"""The platforms' encrypted buyer fields, as the simulator serves them by default, and their decrypt and
e-waybill APIs (docs/CHANNELS.md "Encrypted buyer data"; fixtures under tests/fixtures/channels/*/encrypted_*.json).

    protect("douyin", raw, order)   # replaces post_receiver/post_tel/post_addr.detail with encrypt_* and mask_*

Ciphertext is deterministic (the same plain text gives the same ciphertext), so polling an unchanged order twice
gives the same bytes, as on the platforms; it is opened only by this module, through the decrypt endpoints.
Taobao and JD decrypt by OAID: the simulator answers from the order it holds under that trade id.

Shapes: Pinduoduo `~body~index~1~~` (names, addresses) and `$body$index$1$$` (phones) with `*_mask` fields and
`open_address_id`; Douyin `##body*index#1##` and `$$body*index$1$$` with `mask_*` fields, `open_address_id` and
`doudian_open_id`; JD base64 `fullname` / `fullAddress` / `telephone`, `mobile` masked `136*******5`,
`desen_mobile` (the platform's hash of the phone) and `oaid`; Taobao masked `receiver_*` fields plus `oaid`.
"""
import base64
import hashlib
import hmac

KEY = b"orderloom-channel-simulator-platform-key"
TAG_BYTES = 24
VERSION = b"\x01\x00"


def _mac(*parts: str) -> bytes:
    return hmac.new(KEY, "\x1f".join(parts).encode(), hashlib.sha256).digest()


def _stream(tag: bytes, length: int) -> bytes:
    out, counter = b"", 0
    while len(out) < length:
        out += hashlib.sha256(KEY + tag + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def seal(plain: str, kind: str) -> str:
    """Deterministic authenticated encryption of one value, as base64 (the body of a platform ciphertext)."""
    data = plain.encode()
    tag = _mac(kind, plain)[:TAG_BYTES]
    body = bytes(a ^ b for a, b in zip(data, _stream(tag, len(data))))
    return base64.b64encode(VERSION + tag + body).decode()


def unseal(body: str, kind: str) -> str | None:
    try:
        raw = base64.b64decode(body.encode(), validate=True)
    except (ValueError, UnicodeError):
        return None
    if not raw.startswith(VERSION) or len(raw) < len(VERSION) + TAG_BYTES:
        return None
    tag, sealed = raw[len(VERSION):len(VERSION) + TAG_BYTES], raw[len(VERSION) + TAG_BYTES:]
    data = bytes(a ^ b for a, b in zip(sealed, _stream(tag, len(sealed))))
    try:
        plain = data.decode()
    except UnicodeDecodeError:
        return None
    return plain if hmac.compare_digest(_mac(kind, plain)[:TAG_BYTES], tag) else None


def _index(plain: str) -> str:
    """The searchable part some platforms add (a keyed hash of the value)."""
    return base64.b64encode(_mac("index", plain)[:12]).decode()


# ---------------------------------------------------------------- each platform's wrapping

def pdd_cipher(plain: str, kind: str) -> str:
    mark = "$" if kind == "phone" else "~"
    return f"{mark}{seal(plain, kind)}{mark}{_index(plain)}{mark}1{mark}{mark}"


def douyin_cipher(plain: str, kind: str) -> str:
    mark = "$" if kind == "phone" else "#"
    return f"{mark}{mark}{seal(plain, kind)}*{_index(plain)}{mark}1{mark}{mark}"


def open_cipher(platform: str, cipher: str) -> str | None:
    """The plain text of a simulator ciphertext of `platform`, or None when it is not one (or was tampered)."""
    if not isinstance(cipher, str) or len(cipher) < 8:
        return None
    mark = cipher[0]
    if platform == "pinduoduo" and mark in "~$":
        parts = cipher.split(mark)
        kind = "phone" if mark == "$" else None
    elif platform == "douyin" and mark in "#$" and cipher.startswith(mark * 2):
        parts = [None, cipher[2:].split("*")[0]]
        kind = "phone" if mark == "$" else None
    elif platform == "jd":
        parts, kind = [None, cipher], None
    else:
        return None
    if len(parts) < 2:
        return None
    for candidate in ((kind,) if kind else ("name", "address", "phone")):
        plain = unseal(parts[1], candidate)
        if plain is not None:
            return plain
    return None


def masked_name(name: str) -> str:
    return name[:1] + "*" * max(len(name) - 1, 1)


def masked_phone(phone: str, keep_head: int = 3, keep_tail: int = 4) -> str:
    return phone[:keep_head] + "*" * max(len(phone) - keep_head - keep_tail, 1) + phone[-keep_tail:]


def oaid_of(platform: str, order_id: str, name: str, phone: str, street: str) -> str:
    """The platform's open addressee id: stable for one receiver of one order, changes with the address."""
    digest = base64.urlsafe_b64encode(_mac("oaid", platform, order_id, name, phone, street)).decode().rstrip("=")
    return "1" + digest.replace("-", "x").replace("_", "y")


def open_address_id_of(platform: str, name: str, phone: str, street: str) -> str:
    """One buyer address across orders (Pinduoduo, Douyin): the same receiver gives the same id."""
    digest = _mac("open_address_id", platform, name, phone, street)
    return ("#" + base64.b64encode(digest).decode()) if platform == "douyin" else digest.hex()


def desen_mobile_of(phone: str) -> str:
    """JD's desen_mobile: a hash that is the same for the same phone on every order."""
    return _mac("desen_mobile", phone).hex()[:32]


# ---------------------------------------------------------------- protect a built order

def protect(platform: str, raw: dict, order) -> dict:
    """The platform's JSON with its buyer fields encrypted as the platform does today (China platforms only)."""
    receiver = getattr(order, "receiver", None)
    if receiver is None:
        return raw
    if platform == "taobao":
        return _taobao(raw, order)
    if platform == "jd":
        return _jd(raw, order)
    if platform == "pinduoduo":
        return _pinduoduo(raw)
    if platform == "douyin":
        return _douyin(raw)
    return raw


def _taobao(raw: dict, order) -> dict:
    name, phone, street = raw.get("receiver_name", ""), raw.get("receiver_mobile", ""), raw.get("receiver_address", "")
    raw = dict(raw)
    raw["oaid"] = oaid_of("taobao", str(order.id), name, phone, street)
    raw["receiver_name"] = masked_name(name)
    raw["receiver_mobile"] = "*" * 7 + phone[-4:]
    raw["receiver_address"] = "**********"
    return raw


def _jd(raw: dict, order) -> dict:
    consignee = dict(raw.get("consigneeInfo") or {})
    name, phone, address = consignee.get("fullname", ""), consignee.get("mobile", ""), consignee.get("fullAddress", "")
    consignee.update({
        "fullname": seal(name, "name"), "fullAddress": seal(address, "address"),
        "telephone": seal(consignee.get("telephone") or phone, "phone"),
        "mobile": masked_phone(phone, 3, 1), "desen_mobile": desen_mobile_of(phone),
        "oaid": oaid_of("jd", str(order.id), name, phone, address),
    })
    return {**raw, "consigneeInfo": consignee}


def _pinduoduo(raw: dict) -> dict:
    name, phone, address = raw.get("receiver_name", ""), raw.get("receiver_phone", ""), raw.get("address", "")
    full = raw.get("receiver_address", "")
    return {
        **raw,
        "receiver_name": pdd_cipher(name, "name"), "receiver_phone": pdd_cipher(phone, "phone"),
        "address": pdd_cipher(address, "address"), "receiver_address": pdd_cipher(full, "address"),
        "receiver_name_mask": masked_name(name), "receiver_phone_mask": masked_phone(phone),
        "address_mask": address[:2] + "****", "receiver_address_mask": full[:6] + "****",
        "open_address_id": open_address_id_of("pinduoduo", name, phone, address),
    }


def _douyin(raw: dict) -> dict:
    raw = dict(raw)
    name, phone = raw.pop("post_receiver", ""), raw.pop("post_tel", "")
    address = dict(raw.get("post_addr") or {})
    detail = address.pop("detail", "")
    address["encrypt_detail"] = douyin_cipher(detail, "address")
    masked_address = {key: value for key, value in address.items() if key != "encrypt_detail"}
    masked_address["detail"] = detail[:2] + "****"
    raw.update({
        "encrypt_post_receiver": douyin_cipher(name, "name"), "encrypt_post_tel": douyin_cipher(phone, "phone"),
        "mask_post_receiver": masked_name(name), "mask_post_tel": masked_phone(phone, 1, 2),
        "post_addr": address, "mask_post_addr": masked_address,
        "open_address_id": open_address_id_of("douyin", name, phone, detail),
        "doudian_open_id": "1@#" + base64.b64encode(_mac("open_id", name, phone)).decode(),
    })
    return raw
