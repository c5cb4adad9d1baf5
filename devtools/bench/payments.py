"""Payment reconciliation benchmark: one day's WeChat Pay trade bill of N lines (default 100,000) against N orders
of an own shop and their recorded payments, with planted differences of every kind; the aim is < 5 s.

    python -m devtools.bench.payments --rows 100000 --repeat 3 [--database-url postgresql+psycopg://...]

Each round times `payments.reconcile` end to end (read the CSV, the chunked order and payment lookups, the
comparison, the mismatch rows, raising the exceptions, the commit) and checks the counts are exactly the planted
ones. The ceiling, in the same run: the least this work can cost on this machine, reading the same file with the
csv module and one plain SELECT of the channel's (channel order id, total, payment status) through psycopg into a
dict, compared in a dict comprehension: no ORM, no rows written.
"""
import argparse
import csv
import statistics
import sys
import time
from datetime import UTC, date, datetime

import sqlalchemy as sa

BILL_DAY = date(2026, 12, 2)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _app(url: str, overrides: dict | None = None):
    from shared.appcore import create_core_app

    return create_core_app("bench-payments", {"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": "", "JOBS_INLINE": True,
                                              "RATELIMIT_STORAGE_URI": "memory://", **(overrides or {})})


def seed(app, rows: int, differ: int) -> tuple[int, str]:
    """`rows` paid orders of channel OS with their WeChat Pay payments on the bill day, and the bill naming them:
    `differ` each of paid-not-recorded (bill lines of no order), amount mismatches, recorded-not-paid (payments
    missing from the bill) and malformed lines. Bulk rows through COPY (PostgreSQL) or executemany."""
    from shared.extensions import db
    from shared.models import Customer
    from shared.payments import bills
    from shared.security import crypto
    from shared.services import catalog, payments
    from devtools.bench.orders import BENCH_ACTOR

    paid_at = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    with app.app_context():
        channel = catalog.create_channel("OS", "官网商城", "own_shop", BENCH_ACTOR)
        from devtools.simulators.payments import PaymentSimulator

        account = payments.configure_account(channel, "wechatpay", BENCH_ACTOR,
                                             **PaymentSimulator().wechatpay_settings())
        db.session.execute(sa.insert(Customer.__table__), [{
            "id": 1, "name": "王伟", "phone": "13800000000", "phone_index": crypto.blind_index("phone", "13800000000"),
            "tier": "standard", "failed_logins": 0, "locale": "zh_CN", "created_at": paid_at}])
        db.session.commit()
        channel_id, account_id = channel.id, account.id
        cipher, phone, index = crypto.encrypt("王伟"), crypto.encrypt("13800000000"), crypto.blind_index("phone", "1")
        total = rows - differ  # orders here: the bill's other `differ` lines name orders we do not have
        order_rows = [(f"OS{i:018d}", channel_id, f"S{i:09d}", 1, "confirmed", "paid", "none", "CNY",
                       "67.90" if i >= differ else "60.00", "0.00", "0.00", "67.90" if i >= differ else "60.00",
                       cipher, phone, index, "浙江省", "杭州市", "西湖区", cipher, paid_at, paid_at, paid_at, paid_at, 1)
                      for i in range(total + differ)]  # the last `differ` are recorded, missing from the bill
        columns = ("order_no", "channel_id", "channel_order_id", "customer_id", "status", "payment_status",
                   "refund_status", "currency", "goods_total", "shipping_fee", "discount", "total", "receiver_name",
                   "receiver_phone", "receiver_phone_index", "province", "city", "district", "street", "placed_at",
                   "paid_at", "created_at", "updated_at", "version")
        _bulk(db, "orders", columns, order_rows)
        ids = dict(db.session.execute(sa.text("SELECT channel_order_id, id FROM orders WHERE channel_id = :c"),
                                      {"c": channel_id}).all())
        _bulk(db, "payments", ("account_id", "provider", "transaction_id", "out_trade_no", "order_id", "amount",
                               "paid_at", "created_at"),
              [(account_id, "wechatpay", f"42{i:026d}", f"S{i:09d}", ids[f"S{i:09d}"],
                "67.90" if i >= differ else "60.00", paid_at, paid_at) for i in range(total + differ)])
        db.session.commit()
        entries = [("2026-12-02 10:00:00", "payment", f"S{i:09d}", f"42{i:026d}", "67.90") for i in range(total)]
        entries += [("2026-12-02 11:00:00", "payment", f"N{i:09d}", f"43{i:026d}", "67.90") for i in range(differ)]
        text = bills.write_wechat_trade_bill(entries)
        lines = text.split("\r\n")
        for k in range(differ):  # malformed: fields cut off, on the lines after the amount-mismatch ones
            position = 1 + differ + k
            lines[position] = ",".join(lines[position].split(",")[:9])
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("ANALYZE orders"))
            db.session.commit()
        return account_id, "\r\n".join(lines)


def _bulk(db, table: str, columns: tuple, rows: list) -> None:
    if db.engine.dialect.name == "postgresql":
        db.session.commit()
        raw = db.engine.raw_connection()
        try:
            with raw.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
    else:
        db.session.execute(sa.text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                   f"({', '.join(':' + c for c in columns)})"),
                           [dict(zip(columns, row)) for row in rows])
        db.session.commit()


def ceiling(app, text: str) -> float:
    """The plain floor: csv over the file, one SELECT into a dict, a dict comparison."""
    from shared.extensions import db

    with app.app_context():
        started = time.perf_counter()
        billed = {fields[6][1:]: fields[24][1:] for fields in csv.reader(text.splitlines()[1:-2]) if len(fields) == 27}
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT channel_order_id, total, payment_status FROM orders")
            ours = {key: (str(total), status) for key, total, status in cursor.fetchall()}
        finally:
            raw.close()
        _ = [k for k, v in billed.items() if ours.get(k, (None,))[0] != v]
        return time.perf_counter() - started


def run(url: str, rows: int = 100_000, repeat: int = 3, overrides: dict | None = None) -> dict:
    from shared.actors import SYSTEM
    from shared.extensions import db
    from shared.services import payments

    differ = max(1, min(500, rows // 40))
    app = _app(url, overrides)
    progress(f"payments: seeding {rows:,} orders, payments and bill lines ({differ} of each difference)")
    account_id, text = seed(app, rows, differ)
    data = text.encode()
    seconds, ceilings, counts = [], [], []
    for round_number in range(repeat):
        ceilings.append(ceiling(app, text))
        with app.app_context():
            account = payments.get_account(account_id)
            started = time.perf_counter()
            run_ = payments.reconcile(account, BILL_DAY, data, SYSTEM, source="import", filename="bench.csv")
            db.session.commit()
            seconds.append(time.perf_counter() - started)
            counts.append((run_.bill_rows, run_.matched, run_.paid_not_recorded, run_.amount_mismatch,
                           run_.recorded_not_paid, run_.malformed))
            progress(f"payments round {round_number + 1}: {seconds[-1]:.2f} s (ceiling {ceilings[-1]:.2f} s) "
                     f"counts {counts[-1]}")
            db.session.remove()
    with app.app_context():
        db.engine.dispose()
    # bill lines; matched = payment lines − paid-not-recorded − amount mismatches; the malformed lines' orders are
    # recorded here but not (readably) billed, so recorded-not-paid counts them beside the unbilled ones
    expected = (rows, rows - 3 * differ, differ, differ, 2 * differ, differ)
    return {"rows": rows, "differ": differ, "seconds": seconds, "ceiling": ceilings, "counts": counts,
            "expected": expected, "ok": all(c == expected for c in counts),
            "median": statistics.median(seconds), "ceiling_median": statistics.median(ceilings)}


def main(argv=None) -> int:
    from devtools.bench.orders import DEFAULT_BASE_URL, bench_database

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=DEFAULT_BASE_URL)
    args = parser.parse_args(argv)
    with bench_database("payments", args.database_url) as url:
        results = run(url, rows=args.rows, repeat=args.repeat)
    print(f"payment reconciliation of {results['rows']:,} bill lines: median {results['median']:.2f} s "
          f"(min {min(results['seconds']):.2f}, max {max(results['seconds']):.2f}); ceiling median "
          f"{results['ceiling_median']:.2f} s; ratio {results['ceiling_median'] / results['median']:.2f}; "
          f"counts {'exact' if results['ok'] else 'WRONG'} {results['counts'][0]} (expected {results['expected']}); "
          f"aim < 5 s: {'met' if results['median'] < 5 else 'not met'}")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
