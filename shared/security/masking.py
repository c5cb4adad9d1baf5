"""Masked forms of personal data, and the view of a record that a role is allowed to see."""
from shared.security.permissions import Visibility, visibility

HIDDEN_TEXT = "—"


def masked_phone(phone: str | None) -> str:
    """138****5678: the first three and last four digits."""
    if not phone:
        return ""
    digits = phone.strip()
    if len(digits) <= 7:
        return "*" * max(len(digits) - 2, 0) + digits[-2:]
    return f"{digits[:3]}****{digits[-4:]}"


def masked_name(name: str | None) -> str:
    """张** / J***: the first character only."""
    if not name:
        return ""
    return name[0] + "*" * max(len(name) - 1, 1)


def masked_email(email: str | None) -> str:
    if not email or "@" not in email:
        return ""
    local, domain = email.split("@", 1)
    return f"{local[:1]}***@{domain}"


def masked_id_number(value: str | None) -> str:
    if not value:
        return ""
    return f"{value[:3]}{'*' * max(len(value) - 7, 1)}{value[-4:]}"


def masked_address(province: str, city: str, district: str) -> str:
    """The address to district level: enough to know where, not enough to visit."""
    return f"{province} {city} {district} ****"


def full_address(province: str, city: str, district: str, street: str, postal_code: str | None = None) -> str:
    tail = f" {postal_code}" if postal_code else ""
    return f"{province} {city} {district} {street}{tail}"


MASKERS = {"name": masked_name, "phone": masked_phone, "email": masked_email, "id_number": masked_id_number}


def shown_value(role: str, field: str, value: str | None, reveal: bool = False) -> str:
    """What a role sees of one personal field: hidden, masked, or (when revealing and allowed) the value."""
    level = visibility(role, field)
    if level is Visibility.HIDDEN:
        return HIDDEN_TEXT
    if level is Visibility.FULL and reveal:
        return value or ""
    return MASKERS[field](value)


def order_contact(order, role: str, reveal: bool = False, plain: dict | None = None, address: bool = True) -> dict:
    """The receiver of an order as a role may see it; `reveal` asks for full values where the role may.

    An order whose buyer fields are platform ciphertext holds only the platform's masked forms: those are shown
    as the platform wrote them, and full values exist only in `plain`, what the platform's decrypt API answered
    (`shared.services.platform_privacy`). `address=False`: receiver and phone only, for a list that shows no
    address (the order then needs no street: a row of a few columns will do)."""
    if getattr(order, "platform_protected", False):
        return _protected_contact(order, role, plain if reveal else None, address)
    if not address:
        return {"receiver": shown_value(role, "name", order.receiver_name, reveal),
                "phone": shown_value(role, "phone", order.receiver_phone, reveal)}
    address_level = visibility(role, "address")
    if address_level is Visibility.HIDDEN:
        address = HIDDEN_TEXT
    elif address_level is Visibility.FULL and reveal:
        address = full_address(order.province, order.city, order.district, order.street, order.postal_code)
    else:
        address = masked_address(order.province, order.city, order.district)
    return {
        "receiver": shown_value(role, "name", order.receiver_name, reveal),
        "phone": shown_value(role, "phone", order.receiver_phone, reveal),
        "address": address,
        "province": order.province if address_level is not Visibility.HIDDEN else HIDDEN_TEXT,
        "city": order.city if address_level is not Visibility.HIDDEN else HIDDEN_TEXT,
        "district": order.district if address_level is not Visibility.HIDDEN else HIDDEN_TEXT,
    }


def _protected_contact(order, role: str, plain: dict | None, with_address: bool = True) -> dict:
    def shown(field: str, masked: str, value_key: str) -> str:
        level = visibility(role, field)
        if level is Visibility.HIDDEN:
            return HIDDEN_TEXT
        if level is Visibility.FULL and plain:
            return plain.get(value_key) or ""
        return masked or ""

    if not with_address:
        return {"receiver": shown("name", order.receiver_name, "receiver"),
                "phone": shown("phone", order.receiver_phone, "phone"), "platform_masked": plain is None}

    address_level = visibility(role, "address")
    if address_level is Visibility.HIDDEN:
        address = HIDDEN_TEXT
    elif address_level is Visibility.FULL and plain:
        address = full_address(order.province, order.city, order.district, plain.get("street") or "",
                               order.postal_code)
    else:
        address = f"{order.province} {order.city} {order.district} {order.street}"
    contact = {
        "receiver": shown("name", order.receiver_name, "receiver"),
        "phone": shown("phone", order.receiver_phone, "phone"),
        "address": address,
        "province": order.province if address_level is not Visibility.HIDDEN else HIDDEN_TEXT,
        "city": order.city if address_level is not Visibility.HIDDEN else HIDDEN_TEXT,
        "district": order.district if address_level is not Visibility.HIDDEN else HIDDEN_TEXT,
        "platform_masked": plain is None,
    }
    if plain and address_level is Visibility.FULL:
        contact["street"] = plain.get("street") or ""
    return contact


def may_reveal(role: str) -> bool:
    """Whether a role can reveal any personal field of an order at all."""
    return any(visibility(role, f) is Visibility.FULL for f in ("name", "phone", "address"))
