"""Two red-letter reversals (红字) opened at the same moment for one blue invoice, each for more than half of what
remains, cannot both be opened: the blue part's row is locked while a red is opened (red_letters.open_red), so
exactly one wins and the other is refused over_remaining; the total reserved never exceeds the blue gross. Real
commits, each thread its own app context and session, started together by a barrier. On PostgreSQL the row lock
is what stops the second (without `with_for_update` both open); SQLite's single writer serializes them anyway."""
from decimal import Decimal as D

from sqlalchemy import func, select

from shared.extensions import db
from shared.models.invoices import InvoicePart, RedLetter
from shared.services import invoices, orders, red_letters
from shared.services.errors import ValidationFailed
from shared.timekeeping import utc_now
from tests.factories import ADMIN, open_shop, order_payload, race
from tests.test_invoices import profile_for, taxed

CLIENTS = 2


def issued_part_id(app) -> tuple[int, D]:
    """One blue invoice (59.90 at 13 % + shipping 8.00 at 9 %), seeded issued, committed."""
    with app.app_context():
        open_shop("SKU-1", 20, "龙井茶 250g")
        db.session.commit()
        taxed()
        order = orders.create_order(order_payload(), ADMIN)
        db.session.commit()
        request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
        db.session.commit()
        (part,) = request.parts
        part.status, part.number, part.issued_at = "issued", "26332000000000000001", utc_now()
        request.status = "issued"
        db.session.commit()
        return part.id, D(part.total_gross)


def test_two_reds_at_once_for_more_than_half_each_one_wins(live_apps):
    app = live_apps.core
    part_id, gross = issued_part_id(app)
    asked = (gross / 2 + D("5.00")).quantize(D("0.01"))  # each more than half of what remains (all of it)
    outcomes = race(app, CLIENTS, lambda _n: red_letters.open_red(part_id, "return", str(asked), ADMIN),
                    "opened", refused=(ValidationFailed,))
    assert sorted(outcomes) == ["opened", "over_remaining"], outcomes
    with app.app_context():
        reds = db.session.scalars(select(RedLetter)).all()
        assert len(reds) == 1 and reds[0].total_gross == -asked
        reserved = -db.session.scalar(select(func.sum(RedLetter.total_gross)))
        assert reserved <= gross
        part = db.session.get(InvoicePart, part_id)
        assert red_letters.remaining(part) == gross - asked
