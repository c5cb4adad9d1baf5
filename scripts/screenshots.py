#!/usr/bin/env python3
"""Screenshots of every portal page, for every demo staff role, in Chinese and English (headless Chromium,
1366×768), on a freshly seeded demo database (SQLite, as `orderloom demo` seeds it, with fewer orders).

    make install && .venv/bin/python scripts/screenshots.py            # → screenshots/<language>/<role>/<page>.png

It also prints what the visual check (devtools/visual.py, asserted by tests/test_visual.py) finds: console errors,
English left on Chinese pages, horizontal overflow, overlapping header items. Exit status 1 with --strict when it
finds any. Needs Debian's chromium and chromium-driver (scripts/ensure-system.sh installs them).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from devtools import visual

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=visual.SCREENSHOT_DIR, help="folder for the screenshots")
    parser.add_argument("--orders", type=int, default=visual.SEEDED_ORDERS, help="demo orders to seed")
    parser.add_argument("--roles", default="", help="comma-separated role codes (default: every demo role)")
    parser.add_argument("--check-only", action="store_true", help="run the checks without saving screenshots")
    parser.add_argument("--timings", action="store_true", help="print the slowest pages")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the check finds a problem")
    args = parser.parse_args(argv)

    import logging

    from portal import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per page and asset would bury the report

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="orderloom-screenshots-") as folder:
        url = f"sqlite:///{Path(folder) / 'demo.sqlite3'}"
        print(f"Seeding a demo database ({args.orders} orders) in {folder}")
        visual.seed_database(url, args.orders, report=lambda line: print(line, flush=True))
        app = create_app(visual.demo_config(url))
        accounts = visual.staff_sign_ins(app)
        if args.roles:
            wanted = set(args.roles.split(","))
            accounts = [account for account in accounts if account.role in wanted]
        server = visual.PortalServer(app)
        print(f"Walking {server.url} as {', '.join(a.role for a in accounts)} (and anonymously), zh_CN and en")
        try:
            report = visual.walk(server.url, accounts, screenshots=None if args.check_only else args.out,
                                 report=lambda line: print(line, flush=True))
        finally:
            server.stop()
    if args.timings:
        for visit in sorted(report.visits, key=lambda v: -v.seconds)[:25]:
            print(f"  {visit.seconds:5.2f} s  {visit.role:<18} {visit.language:<6} {visit.page}")
    where = "no screenshots" if args.check_only else f"screenshots under {args.out}"
    print(f"{len(report.visits)} pages, {where} ({time.perf_counter() - started:.0f} s)")
    if report.problems:
        print(f"{len(report.problems)} problem(s):")
        for problem in report.problems:
            print("  " + str(problem))
    else:
        print("no problems found")
    return 1 if args.strict and report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
