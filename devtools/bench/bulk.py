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
    """COPY rows (tuples, or lines already in COPY text format) into table, in large blocks; returns the count."""
    count, block = 0, []
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            block.append(row if isinstance(row, str) else "\t".join(map(_text, row)))
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
        sequences: dict = {}
        sample = {}

        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SET maintenance_work_mem = '256MB'")
            # The rows are generated consistent (tests/test_benchmarks.py checks them): skip the per-row foreign
            # key triggers during the copy, as pg_restore does, where the role may (a superuser, as in CI).
            try:
                cursor.execute("SET session_replication_role = replica")
            except Exception:  # noqa: BLE001 - not allowed: keep the checks, only slower
                raw.rollback()
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

            lines: list[str] = []
            shipments: list[str] = []
            tally = {"open_shipments": 0}

            def money(cents: int) -> str:
                return f"{cents // 100}.{cents % 100:02d}"

            prices = [rng.randrange(990, 60000) for _ in range(skus)]  # cents
            line_counts = rng.choices((1, 2, 3), (3, 2, 1), k=count)
            customers = [rng.randrange(customer_count) for _ in range(count)]
            hold_note, cancel_note, null = "地址待确认", "买家取消", "\\N"
            late = now - timedelta(seconds=60)

            def orders():
                """COPY text lines of the orders, each with its lines and shipment appended to their lists."""
                line_id = 0
                random_ = rng.random
                for i, (moment, status) in enumerate(placed):
                    order_id = i + 1
                    code = channel_of[i]
                    day = local_date(moment, zone)
                    key = (code, day)
                    sequence = sequences[key] = sequences.get(key, 0) + 1
                    customer = customers[i]
                    paid = status not in ("pending_review", "cancelled") or random_() < 0.5
                    goods = 0
                    for sku in rng.sample(range(skus), line_counts[i]):
                        quantity = 1 if random_() < 0.6 else 2 if random_() < 0.6 else 3
                        line_id += 1
                        total = prices[sku] * quantity
                        goods += total
                        lines.append(f"{line_id}\t{order_id}\t{sku + 1}\t{quantity}\t{money(prices[sku])}\t"
                                     f"{money(total)}")
                    shipping = (0, 0, 800, 1200)[int(random_() * 4)]
                    warehouse = None if status in ("pending_review", "confirmed", "on_hold") and random_() < 0.9 \
                        else warehouse_ids[int(random_() * len(warehouse_ids))]
                    steps = SHIPMENT_STEPS.get(status)
                    shipped_at = None
                    if status in ("shipped", "completed"):
                        shipped_at = min(moment + timedelta(hours=4 + 26 * random_()), late)
                    if steps:
                        warehouse = warehouse or warehouse_ids[0]
                        step = steps[int(random_() * len(steps))]
                        allocated = min(moment + timedelta(minutes=1 + 119 * random_()), late)
                        delivered = min(shipped_at + timedelta(days=2), late).isoformat() if status == "completed" \
                            else "\\N"
                        shipments.append(
                            f"{order_id}\t{warehouse}\t{step}\t{int(random_() * 400)}\t"
                            f"{(allocated + timedelta(hours=24)).isoformat()}\t{CARRIERS[int(random_() * 4)]}\t"
                            + (f"W{order_id:012d}\t" if shipped_at else "\\N\t")
                            + f"{allocated.isoformat()}\t{shipped_at.isoformat() if shipped_at else null}\t"
                            f"{delivered}")
                        tally["open_shipments"] += step != "delivered"
                    if i == count // 3:
                        sample["phone"] = phones[customer]
                    updated = min(moment + timedelta(hours=1 + 95 * random_()), now)
                    province, city, district = PLACES[int(random_() * len(PLACES))]
                    placed_text = moment.isoformat()
                    yield "\t".join((
                        str(order_id), order_numbers.compose(code, day, sequence), str(channel_ids[code]),
                        f"{code}{3_000_000_000_000 + i * 7919}", str(customer + 1),
                        str(warehouse) if warehouse else "\\N", status,
                        "confirmed" if status == "on_hold" else "\\N", hold_note if status == "on_hold" else "\\N",
                        cancel_note if status == "cancelled" else "\\N", "paid" if paid else "unpaid", "none", "CNY",
                        money(goods), money(shipping), "0.00", money(goods + shipping),
                        name_cipher[customer_name[customer]], phone_cipher[customer], phone_index[customer],
                        province, city, district, streets[int(random_() * len(streets))], placed_text,
                        (moment + timedelta(minutes=1)).isoformat() if paid else "\\N",
                        shipped_at.isoformat() if shipped_at else "\\N",
                        (moment + timedelta(seconds=5)).isoformat(), updated.isoformat(), "1"))

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
            raw.rollback()
            raw.cursor().execute("RESET ALL")  # the connection goes back to the pool: no bulk settings on it
            raw.commit()
            raw.close()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM (ANALYZE) skus, customers, orders, order_lines, shipments, channels, "
                                       "warehouses, order_number_sequences, staff_users")
        progress(f"bulk: vacuumed and analyzed ({time.perf_counter() - started:.1f} s)")
    open_shipments = tally["open_shipments"]
    return {"orders": count, "customers": customer_count, "lines": len(lines), "shipments": len(shipments),
            "open_shipments": open_shipments, "sample_phone": sample.get("phone"),
            "seconds": time.perf_counter() - started}
