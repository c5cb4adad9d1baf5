"""Field encryption with rotatable keys (Fernet via `cryptography`) and keyed blind indexes for look-ups."""
import base64
import hashlib
import hmac
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class KeyRing:
    def __init__(self, keys: list[str], index_key: str):
        if not keys:
            raise RuntimeError("no data encryption key configured (ORDERLOOM_DATA_KEYS)")
        self.fernet = MultiFernet([Fernet(_as_fernet_key(k)) for k in keys])
        self.index_key = index_key.encode()


_ring: KeyRing | None = None


def _as_fernet_key(key: str) -> bytes:
    """Accept a Fernet key, or any 32-byte base64 key, and refuse anything shorter."""
    raw = base64.urlsafe_b64decode(key.encode() + b"=" * (-len(key) % 4))
    if len(raw) != 32:
        raise RuntimeError("each ORDERLOOM_DATA_KEYS entry must be 32 bytes, base64 encoded")
    return base64.urlsafe_b64encode(raw)


def configure(keys: list[str], index_key: str) -> None:
    """Install the key ring; called by every app factory and worker before touching personal data."""
    global _ring
    _ring = KeyRing(keys, index_key)


def _current() -> KeyRing:
    if _ring is None:
        raise RuntimeError("encryption keys are not configured")
    return _ring


def encrypt(plain: str) -> str:
    return _current().fernet.encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().fernet.decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError("personal data could not be decrypted with any configured key") from exc


def encrypt_bytes(plain: bytes) -> bytes:
    """A whole file (e.g. an export that holds personal data) encrypted as one Fernet token."""
    return _current().fernet.encrypt(plain)


def decrypt_bytes(token: bytes) -> bytes:
    try:
        return _current().fernet.decrypt(token)
    except InvalidToken as exc:
        raise RuntimeError("a stored file could not be decrypted with any configured key") from exc


def new_key() -> str:
    return Fernet.generate_key().decode()


def normalize_phone(phone: str) -> str:
    """Digits only, without a leading +86 country code, so that look-ups match however it was typed."""
    digits = re.sub(r"\D", "", phone or "")
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits


def blind_index(kind: str, value: str) -> str:
    """Keyed hash of a normalized value: equal inputs match, the value itself cannot be read back."""
    normalized = normalize_phone(value) if kind == "phone" else value.strip().lower()
    return hmac.new(_current().index_key, f"{kind}:{normalized}".encode(), hashlib.sha256).hexdigest()
