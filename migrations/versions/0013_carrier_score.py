"""Carrier credibility (issue 15 item 2): the scoring rules (one row, the defaults below), monthly scores per carrier
and route, each carrier's standing (de-weighted, with the reason), whether a delivered parcel came with a signed
photo, and the ops manager's `fulfilment` approve grant (editing the rules).

Revision ID: 0013_carrier_score
Revises: 0012_ui_find
"""
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "0013_carrier_score"
down_revision = "0013_purchase"
branch_labels = None
depends_on = None


def upgrade() -> None:
    now = datetime.now(UTC)
    rules = op.create_table(
        "carrier_score_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("on_time_weight", sa.Numeric(4, 3), nullable=False),
        sa.Column("stall_weight", sa.Numeric(4, 3), nullable=False),
        sa.Column("photo_weight", sa.Numeric(4, 3), nullable=False),
        sa.Column("response_weight", sa.Numeric(4, 3), nullable=False),
        sa.Column("min_route_parcels", sa.Integer(), nullable=False),
        sa.Column("deweight_below", sa.Numeric(5, 2), nullable=False),
        sa.Column("load_threshold", sa.Numeric(4, 3), nullable=False),
        sa.Column("response_target_hours", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_carrier_score_rules")),
    )
    op.bulk_insert(rules, [{"id": 1, "on_time_weight": Decimal("0.4"), "stall_weight": Decimal("0.3"),
                            "photo_weight": Decimal("0.1"), "response_weight": Decimal("0.2"),
                            "min_route_parcels": 30, "deweight_below": Decimal("85"),
                            "load_threshold": Decimal("0.9"), "response_target_hours": 24,
                            "updated_by": "migration", "updated_at": now}])
    op.create_table(
        "carrier_scores",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("carrier_code", sa.String(length=8), nullable=False),
        sa.Column("origin_province", sa.String(length=40), nullable=False),
        sa.Column("destination_province", sa.String(length=40), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in (
            "parcels", "judged", "on_time", "stalled", "photo_reported", "photo_signed", "complaints",
            "complaints_answered")),
        sa.Column("score", sa.Numeric(5, 2), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("month", "carrier_code", "origin_province", "destination_province",
                                name=op.f("pk_carrier_scores")),
    )
    op.create_table(
        "carrier_standings",
        sa.Column("carrier_code", sa.String(length=8), nullable=False),
        sa.Column("deweighted", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Numeric(5, 2), nullable=True),
        sa.Column("month", sa.Date(), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("carrier_code", name=op.f("pk_carrier_standings")),
    )
    with op.batch_alter_table("shipments") as batch:
        batch.add_column(sa.Column("sign_photo", sa.Boolean(), nullable=True))
    grants = sa.table("role_grants", sa.column("role_code"), sa.column("resource"), sa.column("action"))
    connection = op.get_bind()
    has_manager = connection.execute(sa.text("SELECT 1 FROM staff_roles WHERE code = 'ops_manager'")).first()
    granted = connection.execute(sa.text("SELECT 1 FROM role_grants WHERE role_code = 'ops_manager' "
                                         "AND resource = 'fulfilment' AND action = 'approve'")).first()
    if has_manager and not granted:
        op.bulk_insert(grants, [{"role_code": "ops_manager", "resource": "fulfilment", "action": "approve"}])
        connection.execute(sa.text("UPDATE permission_revision SET token = :token, changed_at = :now"),
                           {"token": uuid.uuid4().hex, "now": now})


def downgrade() -> None:
    op.execute("DELETE FROM role_grants WHERE role_code = 'ops_manager' AND resource = 'fulfilment' "
               "AND action = 'approve'")
    with op.batch_alter_table("shipments") as batch:
        batch.drop_column("sign_photo")
    op.drop_table("carrier_standings")
    op.drop_table("carrier_scores")
    op.drop_table("carrier_score_rules")
