"""Key rotation: re-encrypt every stored encrypted value with the newest key.

Which columns: every column whose type is EncryptedText or EncryptedBlob, found in the models' metadata, so a new
encrypted column is rotated without being listed here (personal data, TOTP secrets, channel credentials, webhook
secrets, stored payloads, export files). A rotation is a sensitive operation: from the CLI it is done as a named
admin who confirms with a current second-factor code (`authorise`).
"""
from functools import cache

from sqlalchemy import bindparam, select, update

from shared.actors import Actor
from shared.extensions import db
from shared.models.types import EncryptedBlob, EncryptedText
from shared.security.permissions import ADMIN_POWERS, can
from shared.services import audit
from shared.services.errors import Forbidden
from shared.services.validation import N_, say

NOT_ADMIN = N_("%(user)s may not rotate keys: it takes an active user who may change roles and users")


@cache
def encrypted_columns() -> dict:
    """{table: (column names)} of every encrypted column, from the metadata."""
    found = {}
    for table in db.Model.metadata.sorted_tables:
        names = tuple(c.name for c in table.columns if isinstance(c.type, (EncryptedText, EncryptedBlob)))
        if names:
            found[table] = names
    return found


def authorise(username: str, code: str, ip: str | None = None) -> Actor:
    """The admin a rotation is done as: active, holding the admin powers, and confirming with a current TOTP code
    (refused: Forbidden, or CodeRefused with the failure counted and audited: commit before answering)."""
    from shared.services import second_factor, staff

    user = staff.get_user(username)
    actor = Actor.for_staff(user, ip=ip)
    if not user.active or not all(can(user.role, resource, action) for resource, action in ADMIN_POWERS):
        audit.record(actor, "keys.rotate_refused", "keys", "data", after={"reason": "not_admin"})
        raise Forbidden(say(NOT_ADMIN, user=user.username), code="forbidden")
    second_factor.verify_for_request(user, code, actor)
    return actor


def rotate_all(actor: Actor, batch: int = 1000) -> int:
    """Read each value (any configured key decrypts it) and write it back: the column encrypts with the newest.
    One UPDATE statement per batch of rows (executemany). Blind indexes use their own key, so look-ups keep
    working through a rotation."""
    count = 0
    for table, fields in encrypted_columns().items():
        # Walk by the table's primary key (`id` on most tables; parcel_couriers is keyed by its shipment).
        [key] = table.primary_key.columns
        statement = update(table).where(key == bindparam("b_key")).values(
            {f: bindparam(f"b_{f}", type_=table.c[f].type) for f in fields})
        last_key = 0
        size = batch if not any(isinstance(table.c[f].type, EncryptedBlob) for f in fields) else max(1, batch // 50)
        while True:  # files (export content) in small batches: each may be megabytes
            rows = db.session.execute(select(key.label("row_key"), *[table.c[f] for f in fields])
                                      .where(key > last_key).order_by(key).limit(size)).all()
            if not rows:
                break
            params = [{"b_key": row.row_key, **{f"b_{f}": getattr(row, f) for f in fields}} for row in rows]
            db.session.execute(statement, params)
            count += sum(1 for row in rows for f in fields if getattr(row, f) is not None)
            last_key = rows[-1].row_key
    audit.record(actor, "keys.rotate", "keys", "data", after={"values": count})
    return count
