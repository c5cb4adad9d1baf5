"""Key rotation: re-encrypt every stored personal value with the newest key."""
from sqlalchemy import select, update

from shared.actors import Actor
from shared.extensions import db
from shared.models import Customer, CustomerAddress, Order, SecondFactor
from shared.services import audit

ENCRYPTED = {
    Customer: ("name", "phone", "email", "id_number"),
    CustomerAddress: ("receiver", "phone", "street"),
    Order: ("receiver_name", "receiver_phone", "street"),
    SecondFactor: ("secret",),  # TOTP secrets: readable by the app, so encrypted like personal data
}


def rotate_all(actor: Actor, batch: int = 1000) -> int:
    """Read each value (any configured key decrypts it) and write it back: the column encrypts with the newest.

    Blind indexes use their own key, so look-ups keep working through a rotation.
    """
    count = 0
    for model, fields in ENCRYPTED.items():
        table = model.__table__
        last_id = 0
        while True:
            rows = db.session.execute(
                select(table.c.id, *[table.c[f] for f in fields]).where(table.c.id > last_id)
                .order_by(table.c.id).limit(batch)
            ).all()
            if not rows:
                break
            for row in rows:
                values = {f: getattr(row, f) for f in fields if getattr(row, f) is not None}
                if values:
                    db.session.execute(update(table).where(table.c.id == row.id).values(**values))
                    count += len(values)
                last_id = row.id
    audit.record(actor, "keys.rotate", "keys", "data", after={"values": count})
    return count
