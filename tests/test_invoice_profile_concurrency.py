"""Concurrent requests for one customer's invoice profiles keep the rules: one default, at most 20 profiles.
Real commits on SQLite and PostgreSQL."""

from sqlalchemy import func, select

from shared.extensions import db
from shared.models import InvoiceProfile
from shared.services import customers, invoice_profiles
from shared.services.errors import ValidationFailed
from tests.factories import ADMIN, PASSWORD, race

CLIENTS = 24


def test_concurrent_first_profiles_make_one_default_and_stop_at_the_limit(live_apps):
    app = live_apps.core
    with app.app_context():
        customer_id = customers.create_account("李雷", "13900001111", "li.lei@example.com", PASSWORD, ADMIN).id
        db.session.commit()
    outcomes = race(app, CLIENTS, lambda number: invoice_profiles.create_profile(
        customer_id, {"kind": "individual", "name": f"李雷{number}"}, ADMIN), "saved", refused=(ValidationFailed,))
    assert sorted(set(outcomes)) == ["saved", "too_many_profiles"], outcomes
    assert outcomes.count("saved") == invoice_profiles.MAX_PROFILES
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(InvoiceProfile))
        defaults = db.session.scalar(select(func.count()).select_from(InvoiceProfile)
                                     .where(InvoiceProfile.is_default.is_(True)))
        assert (count, defaults) == (invoice_profiles.MAX_PROFILES, 1)
