"""Out-of-stock choices (issue 15 item 5): customer tiers as data (which are priority, which see offers on the
customer site), the offer settings (transfer days, the pre-order coupon rule), SKU substitutes, expected inbound
receipts, and the offers made to a waiting order. Seeds the tiers allocation already weighs (vip, gold, silver;
vip priority) and the settings row.

Revision ID: 0013_oos_offers
Revises: 0012_ui_find
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0013_oos_offers"
down_revision = "0013_carrier_score"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=12, scale=2)
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customer_tiers",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name_zh", sa.String(length=40), nullable=False),
        sa.Column("name_en", sa.String(length=40), nullable=False),
        sa.Column("priority", sa.Boolean(), nullable=False),
        sa.Column("offers_on_site", sa.Boolean(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_customer_tiers")),
    )
    op.create_table(
        "stock_offer_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transfer_handling_days", sa.Integer(), nullable=False),
        sa.Column("transfer_km_per_day", sa.Integer(), nullable=False),
        sa.Column("coupon_kind", sa.String(length=8), nullable=True),
        sa.Column("coupon_value", MONEY, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.CheckConstraint("coupon_kind IN ('percent', 'fixed') OR coupon_kind IS NULL",
                           name=op.f("ck_stock_offer_settings_coupon_kind_known")),
        sa.CheckConstraint("transfer_km_per_day > 0", name=op.f("ck_stock_offer_settings_km_per_day_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_offer_settings")),
    )
    op.create_table(
        "sku_substitutes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("substitute_id", sa.Integer(), nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.CheckConstraint("sku_id <> substitute_id", name=op.f("ck_sku_substitutes_substitute_not_itself")),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name=op.f("fk_sku_substitutes_sku_id_skus")),
        sa.ForeignKeyConstraint(["substitute_id"], ["skus.id"], name=op.f("fk_sku_substitutes_substitute_id_skus")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sku_substitutes")),
        sa.UniqueConstraint("sku_id", "substitute_id", name=op.f("uq_sku_substitutes_sku_id_substitute_id")),
    )
    op.create_index("ix_sku_substitutes_sku_id", "sku_substitutes", ["sku_id"])
    op.create_table(
        "expected_receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("warehouse_id", sa.Integer(), nullable=False),
        sa.Column("expected_on", sa.Date(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("promised", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_expected_receipts_receipt_quantity_positive")),
        sa.CheckConstraint("promised >= 0 AND promised <= quantity",
                           name=op.f("ck_expected_receipts_promised_within_quantity")),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name=op.f("fk_expected_receipts_sku_id_skus")),
        sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"],
                                name=op.f("fk_expected_receipts_warehouse_id_warehouses")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expected_receipts")),
    )
    op.create_index("ix_expected_receipts_sku_id_expected_on", "expected_receipts", ["sku_id", "expected_on"])
    op.create_table(
        "stock_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("order_line_id", sa.Integer(), nullable=False),
        sa.Column("exception_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("from_warehouse_id", sa.Integer(), nullable=True),
        sa.Column("to_warehouse_id", sa.Integer(), nullable=True),
        sa.Column("extra_days", sa.Integer(), nullable=True),
        sa.Column("receipt_id", sa.Integer(), nullable=True),
        sa.Column("expected_on", sa.Date(), nullable=True),
        sa.Column("coupon", MONEY, nullable=True),
        sa.Column("unit_price", MONEY, nullable=True),
        sa.Column("price_difference", MONEY, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("decided_at", WHEN, nullable=True),
        sa.Column("decided_by", sa.String(length=120), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.CheckConstraint("kind IN ('transfer', 'pre_order', 'substitute')",
                           name=op.f("ck_stock_offers_offer_kind_known")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_stock_offers_order_id_orders")),
        sa.ForeignKeyConstraint(["order_line_id"], ["order_lines.id"],
                                name=op.f("fk_stock_offers_order_line_id_order_lines")),
        sa.ForeignKeyConstraint(["exception_id"], ["exceptions.id"],
                                name=op.f("fk_stock_offers_exception_id_exceptions")),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name=op.f("fk_stock_offers_sku_id_skus")),
        sa.ForeignKeyConstraint(["from_warehouse_id"], ["warehouses.id"],
                                name=op.f("fk_stock_offers_from_warehouse_id_warehouses")),
        sa.ForeignKeyConstraint(["to_warehouse_id"], ["warehouses.id"],
                                name=op.f("fk_stock_offers_to_warehouse_id_warehouses")),
        sa.ForeignKeyConstraint(["receipt_id"], ["expected_receipts.id"],
                                name=op.f("fk_stock_offers_receipt_id_expected_receipts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_offers")),
    )
    op.create_index("ix_stock_offers_order_id_status", "stock_offers", ["order_id", "status"])
    op.create_index("ix_stock_offers_exception_id", "stock_offers", ["exception_id"])
    now = datetime.now(timezone.utc)
    tiers = sa.table("customer_tiers", sa.column("code"), sa.column("name_zh"), sa.column("name_en"),
                     sa.column("priority"), sa.column("offers_on_site"), sa.column("updated_at"))
    op.bulk_insert(tiers, [
        {"code": "standard", "name_zh": "普通", "name_en": "Standard", "priority": False, "offers_on_site": False,
         "updated_at": now},
        {"code": "silver", "name_zh": "银卡", "name_en": "Silver", "priority": False, "offers_on_site": False,
         "updated_at": now},
        {"code": "gold", "name_zh": "金卡", "name_en": "Gold", "priority": False, "offers_on_site": False,
         "updated_at": now},
        {"code": "vip", "name_zh": "VIP", "name_en": "VIP", "priority": True, "offers_on_site": True,
         "updated_at": now},
    ])
    settings = sa.table("stock_offer_settings", sa.column("id"), sa.column("transfer_handling_days"),
                        sa.column("transfer_km_per_day"), sa.column("coupon_kind"), sa.column("coupon_value"),
                        sa.column("updated_at"))
    op.bulk_insert(settings, [{"id": 1, "transfer_handling_days": 1, "transfer_km_per_day": 500,
                               "coupon_kind": "percent", "coupon_value": 5, "updated_at": now}])


def downgrade() -> None:
    op.drop_index("ix_stock_offers_exception_id", table_name="stock_offers")
    op.drop_index("ix_stock_offers_order_id_status", table_name="stock_offers")
    op.drop_table("stock_offers")
    op.drop_index("ix_expected_receipts_sku_id_expected_on", table_name="expected_receipts")
    op.drop_table("expected_receipts")
    op.drop_index("ix_sku_substitutes_sku_id", table_name="sku_substitutes")
    op.drop_table("sku_substitutes")
    op.drop_table("stock_offer_settings")
    op.drop_table("customer_tiers")
