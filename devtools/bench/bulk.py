"""Seed a million orders in about two minutes: PostgreSQL COPY of customers, orders, lines and shipments.

What it writes is what the product would hold, not placeholders: real Fernet ciphertexts (each distinct name,
phone and street encrypted once and reused: Fernet costs ~20 µs a value, 3 million of them would be a minute on
their own), blind indexes of the phones, valid order numbers with their per-channel daily counters stored,
statuses, channels and warehouses spread as a merchant's are (LIST_STATUSES, LIST_CHANNELS), one to three lines
per order summing to the goods total, and one shipment per order that reached a warehouse, in the step its
order is in (completed orders' parcels delivered). Orders still being worked on were placed in the last three
days; the rest spread over `days` days. Ids follow placement time, as they do in production.

The secondary indexes of the three big tables are dropped before the copy and rebuilt from their own
definitions after it (a sort per index instead of a million random inserts into each), then VACUUM ANALYZE,
so the planner and the visibility map (index-only scans) see the table as a long-lived one.
"""
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

BIG_TABLES = ("orders", "order_lines", "shipments")
OPEN_ORDER_STATUSES = ("pending_review", "confirmed", "allocated", "picking", "packed", "on_hold")
# The shipment of an order in each status (orders without one: pending_review, confirmed, on_hold, cancelled,
# closed). Picking orders' parcels are in a wave, being picked or picked; allocated ones partly waved already.
SHIPMENT_STEPS = {"allocated": ("allocated", "allocated", "waved"), "picking": ("picking", "picking", "picked"),
                  "packed": ("packed",), "shipped": ("shipped",), "completed": ("delivered",)}
CARRIERS = ("SF", "YTO", "ZTO", "JD")


def _text(value) -> str:
    """One field of COPY text format (our values hold no tab, newline or backslash)."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _copy(cursor, table: str, columns: str, rows, batch: int = 20_000) -> int:
    """COPY rows (tuples) into table, written in large text blocks; returns the row count."""
    count, block = 0, []
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            block.append("\t".join(map(_text, row)))
            if len(block) >= batch:
                copy.write("\n".join(block) + "\n")
                count += len(block)
                block = []
        if block:
            copy.write("\n".join(block) + "\n")
            count += len(block)
    return count


def _secondary_indexes(cursor, tables) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of every index of `tables` that backs no constraint (PK, unique, ...)."""
    cursor.execute("""
        SELECT i.relname, pg_get_indexdef(x.indexrelid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relname = ANY(%s) AND t.relnamespace = current_schema()::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)""", (list(tables),))
    return cursor.fetchall()


def seed(app, count: int, days: int = 60, seed: int = 11, skus: int = 200, progress=print) -> dict:
    """Bulk-load `count` orders into the app's (migrated, PostgreSQL) database, whose channels and warehouses
    exist; returns what a benchmark needs to aim at (a sample phone, the counts, the seconds taken)."""
    from devtools.bench.orders import GIVEN, LIST_CHANNELS, LIST_STATUSES, PLACES, SURNAMES
    from shared import order_numbers
    from shared.extensions import db
    from shared.models import Channel, Warehouse
    from shared.security import crypto
    from shared.timekeeping import local_date

    started = time.perf_counter()
    rng = random.Random(seed)
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            raise SystemExit("bulk seeding uses PostgreSQL COPY")
        zone = app.config["MERCHANT_TIMEZONE"]
        channel_ids = dict(db.session.execute(sa.select(Channel.code, Channel.id)).all())
        warehouse_ids = db.session.execute(sa.select(Warehouse.id).order_by(Warehouse.id)).scalars().all()
        missing = [code for code, *_ in LIST_CHANNELS if code not in channel_ids]
        if missing or not warehouse_ids:
            raise RuntimeError(f"create the channels {missing} and some warehouses first")
        db.session.remove()
        now = datetime.now(UTC)
        first = now - timedelta(days=days)

        # Distinct personal values, each encrypted once.
        customer_count = max(1, count // 4)
        names = sorted({s + g for s in SURNAMES for g in GIVEN})
        name_cipher = {name: crypto.encrypt(name) for name in names}
        phones = [f"1{rng.choice('3578')}{n:09d}" for n in rng.sample(range(10 ** 9), customer_count)]
        phone_cipher = [crypto.encrypt(p) for p in phones]
        phone_index = [crypto.blind_index("phone", p) for p in phones]
        streets = [crypto.encrypt(f"幸福路 {n} 号 {n % 29 + 1} 幢") for n in range(1, 2001)]
        customer_name = [rng.choice(names) for _ in range(customer_count)]
        progress(f"bulk: {customer_count:,} phones, {len(names)} names, {len(streets)} streets encrypted "
                 f"({time.perf_counter() - started:.1f} s)")

        codes, code_weights = [c[0] for c in LIST_CHANNELS], [c[-1] for c in LIST_CHANNELS]
        statuses, status_weights = [s[0] for s in LIST_STATUSES], [s[-1] for s in LIST_STATUSES]
        drawn = rng.choices(statuses, status_weights, k=count)
        recent, span = 3 * 86400 - 300, days * 86400 - 300
        placed = sorted((now - timedelta(seconds=300 + rng.random() * (recent if s in OPEN_ORDER_STATUSES else span)),
                         s) for s in drawn)
        channel_of = rng.choices(codes, code_weights, k=count)
        sku_prices = [Decimal(rng.randrange(990, 60000)) / 100 for _ in range(skus)]
        sequences: dict = {}
        sample = {}

        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SET maintenance_work_mem = '256MB'")
            indexes = _secondary_indexes(cursor, BIG_TABLES)
            for name, _definition in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
            _copy(cursor, "skus", "id, code, name, safety_stock, batch_tracked, cold_chain, active, created_at",
                  ((n + 1, f"SKU-{n:04d}", f"商品 {n:04d}", 0, False, False, True, first) for n in range(skus)))
            _copy(cursor, "customers", "id, name, phone, phone_index, tier, failed_logins, locale, created_at, "
                  "session_generation",
                  ((i + 1, name_cipher[customer_name[i]], phone_cipher[i], phone_index[i], "standard", 0, "zh_CN",
                    first - timedelta(days=1), 0) for i in range(customer_count)))
            raw.commit()
            progress(f"bulk: skus and customers copied ({time.perf_counter() - started:.1f} s)")

            lines: list[tuple] = []
            shipments: list[tuple] = []

            def orders():
                line_id = 0
                for i, (moment, status) in enumerate(placed):
                    code = channel_of[i]
                    day = local_date(moment, zone)
                    key = (code, day)
                    sequences[key] = sequences.get(key, 0) + 1
                    customer = rng.randrange(customer_count)
                    paid = status not in ("pending_review", "cancelled") or rng.random() < 0.5
                    goods = Decimal("0.00")
                    for sku in rng.sample(range(skus), rng.choice((1, 1, 1, 2, 2, 3))):
                        quantity = rng.choice((1, 1, 1, 2, 3))
                        line_id += 1
                        total = sku_prices[sku] * quantity
                        goods += total
                        lines.append((line_id, i + 1, sku + 1, quantity, sku_prices[sku], total))
                    shipping = Decimal(rng.choice((0, 0, 8, 12)))
                    warehouse = None if status in ("pending_review", "confirmed", "on_hold") and rng.random() < 0.9 \
                        else rng.choice(warehouse_ids)
                    steps = SHIPMENT_STEPS.get(status)
                    shipped_at = moment + timedelta(hours=rng.randrange(4, 30)) if status in ("shipped",
                                                                                           "completed") else None
                    if steps:
                        warehouse = warehouse or rng.choice(warehouse_ids)
                        step = rng.choice(steps)
                        allocated = moment + timedelta(minutes=rng.randrange(1, 120))
                        allocated = min(allocated, now - timedelta(seconds=60))
                        shipments.append((i + 1, warehouse, step, rng.randrange(0, 400),
                                          allocated + timedelta(hours=24),
                                          rng.choice(CARRIERS), f"W{i + 1:012d}" if shipped_at else None, allocated,
                                          min(shipped_at, now) if shipped_at else None,
                                          min(shipped_at + timedelta(days=2), now) if status == "completed" else None))
                    phone = customer
                    if i == count // 3:
                        sample["phone"] = phones[phone]
                    updated = min(moment + timedelta(hours=rng.randrange(1, 96)), now)
                    yield (i + 1, order_numbers.compose(code, day, sequences[key]), channel_ids[code],
                           f"{code}{3_000_000_000_000 + i * 7919}", customer + 1, warehouse, status,
                           "confirmed" if status == "on_hold" else None,
                           "地址待确认" if status == "on_hold" else None,
                           "买家取消" if status == "cancelled" else None,
                           "paid" if paid else "unpaid", "none", "CNY", goods, shipping, Decimal("0.00"),
                           goods + shipping, name_cipher[customer_name[customer]], phone_cipher[phone],
                           phone_index[phone], *rng.choice(PLACES), rng.choice(streets), moment,
                           moment + timedelta(minutes=1) if paid else None,
                           min(shipped_at, now) if shipped_at else None, moment + timedelta(seconds=5), updated, 1)

            columns = ("id, order_no, channel_id, channel_order_id, customer_id, warehouse_id, status, "
                       "status_before_hold, hold_reason, cancel_reason, payment_status, refund_status, currency, "
                       "goods_total, shipping_fee, discount, total, receiver_name, receiver_phone, "
                       "receiver_phone_index, province, city, district, street, placed_at, paid_at, shipped_at, "
                       "created_at, updated_at, version")
            _copy(cursor, "orders", columns, orders())
            progress(f"bulk: {count:,} orders copied ({time.perf_counter() - started:.1f} s)")
            _copy(cursor, "order_lines", "id, order_id, sku_id, quantity, unit_price, line_total", lines)
            _copy(cursor, "shipments", "order_id, warehouse_id, status, priority, ship_by, carrier_code, waybill_no, "
                  "allocated_at, shipped_at, delivered_at", shipments)
            _copy(cursor, "order_number_sequences", "channel_code, local_date, last_value",
                  ((code, day, value) for (code, day), value in sequences.items()))
            raw.commit()
            progress(f"bulk: {len(lines):,} lines, {len(shipments):,} shipments copied "
                     f"({time.perf_counter() - started:.1f} s)")
            for name, definition in indexes:
                cursor.execute(definition)
            for table in ("skus", "customers", "orders", "order_lines", "shipments"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT max(id) FROM {table}))")
            raw.commit()
            progress(f"bulk: {len(indexes)} indexes rebuilt ({time.perf_counter() - started:.1f} s)")
        finally:
            raw.close()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM (ANALYZE) skus, customers, orders, order_lines, shipments, channels, "
                                       "warehouses, order_number_sequences, staff_users")
        progress(f"bulk: vacuumed and analyzed ({time.perf_counter() - started:.1f} s)")
    open_shipments = sum(1 for s in shipments if s[2] != "delivered")
    return {"orders": count, "customers": customer_count, "lines": len(lines), "shipments": len(shipments),
            "open_shipments": open_shipments, "sample_phone": sample.get("phone"),
            "seconds": time.perf_counter() - started}
