"""Parcels for customers (issue 13 items 2 and 5): transit estimates, parcel couriers, warehouse return addresses,
return pickups and their tracking events.

Revision ID: 0011_cs_parcel
Revises: 0011_pay_refunds
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_cs_parcel"
down_revision = "0011_pay_refunds"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str):
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"))


def upgrade() -> None:
    op.create_table(
        "transit_estimates",
        sa.Column("carrier_code", sa.String(8), nullable=False),
        sa.Column("origin_province", sa.String(40), nullable=False),
        sa.Column("destination_province", sa.String(40), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("median_seconds", sa.Integer(), nullable=False),
        sa.Column("p90_seconds", sa.Integer(), nullable=False),
        sa.Column("computed_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("carrier_code", "origin_province", "destination_province",
                                name=op.f("pk_transit_estimates")),
    )
    op.create_table(
        "parcel_couriers",
        sa.Column("shipment_id", sa.Integer(), nullable=False),
        sa.Column("pickup_name", sa.String(60), nullable=True),
        sa.Column("pickup_phone", sa.Text(), nullable=True),
        sa.Column("delivery_name", sa.String(60), nullable=True),
        sa.Column("delivery_phone", sa.Text(), nullable=True),
        sa.Column("source", sa.String(12), nullable=False),
        sa.Column("seen_at", TZ, nullable=False),
        _fk("parcel_couriers", "shipment_id", "shipments"),
        sa.PrimaryKeyConstraint("shipment_id", name=op.f("pk_parcel_couriers")),
    )
    op.create_table(
        "warehouse_return_addresses",
        sa.Column("warehouse_id", sa.Integer(), nullable=False),
        sa.Column("receiver", sa.String(60), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("province", sa.String(40), nullable=False),
        sa.Column("city", sa.String(40), nullable=False),
        sa.Column("district", sa.String(40), nullable=False),
        sa.Column("street", sa.String(200), nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        _fk("warehouse_return_addresses", "warehouse_id", "warehouses"),
        sa.PrimaryKeyConstraint("warehouse_id", name=op.f("pk_warehouse_return_addresses")),
    )
    op.create_table(
        "return_pickups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(32), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("after_sale_id", sa.Integer(), nullable=True),
        sa.Column("warehouse_id", sa.Integer(), nullable=False),
        sa.Column("carrier_code", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=True),
        sa.Column("provider_order_id", sa.String(64), nullable=True),
        sa.Column("waybill_no", sa.String(40), nullable=True),
        sa.Column("slot_start", TZ, nullable=False),
        sa.Column("slot_end", TZ, nullable=False),
        sa.Column("sender_name", sa.Text(), nullable=False),
        sa.Column("sender_phone", sa.Text(), nullable=False),
        sa.Column("sender_province", sa.String(40), nullable=False),
        sa.Column("sender_city", sa.String(40), nullable=False),
        sa.Column("sender_district", sa.String(40), nullable=False),
        sa.Column("sender_street", sa.Text(), nullable=False),
        sa.Column("lines_summary", sa.String(300), nullable=False),
        sa.Column("courier_name", sa.String(60), nullable=True),
        sa.Column("courier_phone", sa.Text(), nullable=True),
        sa.Column("tracking_step", sa.String(20), nullable=True),
        sa.Column("tracking_flags", sa.String(120), nullable=True),
        sa.Column("last_event_at", TZ, nullable=True),
        sa.Column("received_at", TZ, nullable=True),
        sa.Column("cancelled_at", TZ, nullable=True),
        sa.Column("cancel_reason", sa.String(200), nullable=True),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        _fk("return_pickups", "order_id", "orders"),
        _fk("return_pickups", "warehouse_id", "warehouses"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_return_pickups")),
        sa.UniqueConstraint("serial", name=op.f("uq_return_pickups_serial")),
        sa.UniqueConstraint("waybill_no", name=op.f("uq_return_pickups_waybill_no")),
    )
    op.create_index("ix_return_pickups_order_id", "return_pickups", ["order_id"])
    op.create_index("ix_return_pickups_after_sale_id", "return_pickups", ["after_sale_id"])
    op.create_table(
        "return_pickup_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pickup_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("source", sa.String(12), nullable=False),
        sa.Column("raw_status", sa.String(40), nullable=False),
        sa.Column("step", sa.String(20), nullable=True),
        sa.Column("flag", sa.String(20), nullable=True),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("description_hash", sa.String(16), nullable=False),
        sa.Column("location", sa.String(120), nullable=True),
        sa.Column("received_at", TZ, nullable=False),
        _fk("return_pickup_events", "pickup_id", "return_pickups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_return_pickup_events")),
        sa.UniqueConstraint("pickup_id", "occurred_at", "source", "description_hash",
                            name=op.f("uq_return_pickup_events_event")),
    )


def downgrade() -> None:
    op.drop_table("return_pickup_events")
    op.drop_index("ix_return_pickups_after_sale_id", table_name="return_pickups")
    op.drop_index("ix_return_pickups_order_id", table_name="return_pickups")
    op.drop_table("return_pickups")
    op.drop_table("warehouse_return_addresses")
    op.drop_table("parcel_couriers")
    op.drop_table("transit_estimates")
