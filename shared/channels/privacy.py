"""Platform-encrypted buyer fields: telling ciphertext from text, and the masked forms shown in its place.

The Chinese platforms no longer send the receiver in plain text (docs/CHANNELS.md, "Encrypted buyer data"):
Pinduoduo and Douyin send ciphertext whose first and last characters are its type marker (`~…~` names and
addresses, `$…$` phones, Douyin doubles them: `##…#1##`, `$$…$1$$`), JD sends base64 ciphertext, Taobao sends
masked values and the OAID that stands for the receiver. Adapters read them with these helpers; nothing here
decrypts (only the platform's own decrypt API can).
"""
import re

from shared.channels.canonical import PayloadProblem, text_of
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NO_CIPHERTEXT = N_("%(field)s (platform ciphertext) is missing")
LONGER_THAN_CIPHERTEXT = N_("%(field)s is longer than any platform ciphertext")
BUYER_KEY_TOO_LONG = N_("The platform's buyer key is longer than 200 characters")

MARKERS = "~$#"
NO_MASK = "**"  # what is shown when the platform sends a ciphertext without its masked form
_BASE64 = re.compile(r"^[A-Za-z0-9+/=_\-]{40,}$")


def is_ciphertext(value) -> bool:
    """A platform ciphertext: marker-wrapped (PDD, Douyin, Taobao's older `~…~`), or long base64 (JD)."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if len(text) >= 12 and text[0] in MARKERS and text[-1] == text[0]:
        return True
    return bool(_BASE64.match(text))


def masked_text(value, field_name: str, max_length: int = 60) -> str:
    """A field that is either the platform's masked form or ciphertext: the mask, or NO_MASK for ciphertext."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return NO_MASK
    if is_ciphertext(value):
        return NO_MASK
    return text_of(value, field_name, max_length)


def ciphertext_of(raw: dict, key: str, where: str = "") -> str:
    """A field that must be present and must be ciphertext (as received, never trimmed or changed)."""
    value = raw.get(key) if isinstance(raw, dict) else None
    name = f"{where}.{key}" if where else key
    if not isinstance(value, str) or not value.strip():
        raise PayloadProblem(say(NO_CIPHERTEXT, field=name), field=name, code="missing_field")
    if len(value) > 4000:
        raise PayloadProblem(say(LONGER_THAN_CIPHERTEXT, field=name), field=name, code="too_long")
    return value


def buyer_key_of(*values) -> str | None:
    """The first non-empty pseudonymous buyer key (OAID, desen_mobile, open_address_id, open id), as given."""
    for value in values:
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            key = str(value).strip()
            if len(key) > 200:
                raise PayloadProblem(say(BUYER_KEY_TOO_LONG), field="buyer_key",
                                     code="too_long")
            return key
    return None


def plain_per_field(platform: str, requests, answers: dict, plain_of: dict, error_key: str, text_key: str) -> dict:
    """{order id: {receiver, phone, street}} from a decrypt answer that decrypts field by field (Pinduoduo,
    Douyin): `answers` maps (order id, ciphertext) to the platform's item; a missing or failed item refuses the
    whole batch (nothing half decrypted is shown)."""
    from shared.channels.base import DecryptRefused

    plain = {}
    for request in requests:
        values = {}
        for name, target in plain_of.items():
            item = answers.get((request.order_id, request.ciphertext.get(name)))
            if item is None:
                raise DecryptRefused(f"{platform} returned no {name} for order {request.order_id}")
            if item.get(error_key) not in (0, None):
                raise DecryptRefused(f"{platform} {item.get(error_key)}: {item.get('err_msg') or item.get('error_msg')}")
            values[target] = str(item.get(text_key) or "")
        plain[request.order_id] = values
    return plain
