"""Configuration read from the environment, with safe demo defaults."""
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"

# Demo-only keys: used when the environment gives none, and refused when ORDERLOOM_ENV=production.
DEMO_SECRET_KEY = "orderloom-demo-secret-key-change-me"
DEMO_DATA_KEY = "b3JkZXJsb29tLWRlbW8tZGF0YS1rZXktMzJieXRlcyE="
DEMO_INDEX_KEY = "orderloom-demo-blind-index-key"
DEMO_AUDIT_KEY = "orderloom-demo-audit-key-change-me-in-production"  # signs the audit chains, not data


def _default_database_url() -> str:
    return f"sqlite:///{INSTANCE_DIR / 'orderloom.sqlite3'}"


def load_config(overrides: dict | None = None) -> dict:
    """Build the configuration mapping from the environment, then apply explicit overrides."""
    env = os.environ
    config = {
        "ENV": env.get("ORDERLOOM_ENV", "development"),
        "SQLALCHEMY_DATABASE_URI": env.get("DATABASE_URL") or _default_database_url(),
        "REDIS_URL": env.get("REDIS_URL", ""),
        "SECRET_KEY": env.get("ORDERLOOM_SECRET_KEY", DEMO_SECRET_KEY),
        "DATA_KEYS": [k.strip() for k in env.get("ORDERLOOM_DATA_KEYS", DEMO_DATA_KEY).split(",") if k.strip()],
        "BLIND_INDEX_KEY": env.get("ORDERLOOM_INDEX_KEY", DEMO_INDEX_KEY),
        # The audit chains (audit events, access log, stock ledger): MAC keys newest first, kept apart from the data
        # keys; signed checkpoints appended to a file outside the database (default: one per database, in instance/).
        "AUDIT_KEYS": [k.strip() for k in env.get("ORDERLOOM_AUDIT_KEYS", DEMO_AUDIT_KEY).split(",") if k.strip()],
        "AUDIT_CHECKPOINT_PATH": env.get("ORDERLOOM_AUDIT_CHECKPOINTS", ""),
        "AUDIT_ARCHIVE_DIR": env.get("ORDERLOOM_AUDIT_ARCHIVE_DIR", ""),  # where retention archives old log rows
        "AUDIT_CHECKPOINT_URL": env.get("ORDERLOOM_AUDIT_CHECKPOINT_URL", ""),
        "AUDIT_CHECKPOINT_TO_ROBOT": env.get("ORDERLOOM_AUDIT_CHECKPOINT_TO_ROBOT", "1") == "1",
        "MERCHANT_TIMEZONE": env.get("ORDERLOOM_TIMEZONE", "Asia/Shanghai"),
        # The access report (shared/services/access_report.py): an export of this many records or more is listed;
        # a sign-in is from a new address when the account had not used it in this many days before.
        "ACCESS_REPORT_LARGE_RECORDS": int(env.get("ORDERLOOM_ACCESS_REPORT_LARGE_RECORDS", "5000")),
        "ACCESS_REPORT_LOOKBACK_DAYS": int(env.get("ORDERLOOM_ACCESS_REPORT_LOOKBACK_DAYS", "90")),
        "UNPAID_RESERVATION_MINUTES": int(env.get("ORDERLOOM_UNPAID_MINUTES", "30")),
        "LOGIN_MAX_FAILURES": 5,
        "LOGIN_LOCKOUT_MINUTES": 15,
        "RATELIMIT_STORAGE_URI": env.get("REDIS_URL") or "memory://",
        # Failed sign-ins per address and site (successes never count); Redis down -> counted in memory.
        "SIGN_IN_LIMIT": env.get("ORDERLOOM_SIGN_IN_LIMIT", "30 per 10 minutes"),
        "STAFF_SIGN_IN_LIMIT": env.get("ORDERLOOM_STAFF_SIGN_IN_LIMIT", ""),
        "CUSTOMER_SIGN_IN_LIMIT": env.get("ORDERLOOM_CUSTOMER_SIGN_IN_LIMIT", ""),
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
        "GUEST_LOOKUP_LIMIT": env.get("ORDERLOOM_GUEST_LOOKUP_LIMIT", "5 per 10 minutes"),
        "API_TOKEN_DAYS": int(env.get("ORDERLOOM_API_TOKEN_DAYS", "90")),
        "API_TOKENS_PER_USER": int(env.get("ORDERLOOM_API_TOKENS_PER_USER", "5")),  # live tokens at once
        "DEVICE_TOKEN_DAYS": int(env.get("ORDERLOOM_DEVICE_TOKEN_DAYS", "90")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env.get("ORDERLOOM_SECURE_COOKIES", "0") == "1",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": env.get("ORDERLOOM_SECURE_COOKIES", "0") == "1",
        "PERMANENT_SESSION_LIFETIME": 8 * 3600,
        "SESSION_IDLE_MINUTES": int(env.get("ORDERLOOM_SESSION_IDLE_MINUTES", "30")),  # shared.security.sessions
        "SESSION_ABSOLUTE_HOURS": int(env.get("ORDERLOOM_SESSION_ABSOLUTE_HOURS", "12")),
        "WTF_CSRF_TIME_LIMIT": 8 * 3600,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "JOBS_INLINE": None,  # None: decide by whether Redis answers
        # Long lists: the orders list counts its matches exactly up to this many, then says "more than" (a count
        # of a million rows would cost more than the page); the fulfilment board's per-step counts are served
        # from a snapshot at most this many seconds old (0: counted on every request).
        "ORDER_LIST_COUNT_CAP": int(env.get("ORDERLOOM_ORDER_LIST_COUNT_CAP", "10000")),
        "BOARD_COUNTS_MAX_AGE": float(env.get("ORDERLOOM_BOARD_COUNTS_MAX_AGE", "5")),
        "BABEL_DEFAULT_LOCALE": "zh_CN",
        "BABEL_DEFAULT_TIMEZONE": "UTC",
        # Channel sync: inbound webhooks, alerts to a WeCom or DingTalk group robot (kind "wecom"/"dingtalk").
        # Refused webhook/tracking requests (shared.services.knocking): hourly limits and how long rows are kept.
        "REFUSED_PER_ADDRESS_PER_HOUR": int(env.get("ORDERLOOM_REFUSED_PER_ADDRESS_PER_HOUR", "120")),
        "REFUSED_GLOBAL_PER_HOUR": int(env.get("ORDERLOOM_REFUSED_GLOBAL_PER_HOUR", "5000")),
        "REJECTION_KEEP_DAYS": int(env.get("ORDERLOOM_REJECTION_KEEP_DAYS", "7")),
        "ROLLUP_KEEP_DAYS": int(env.get("ORDERLOOM_ROLLUP_KEEP_DAYS", "90")),
        "WEBHOOK_MAX_BYTES": int(env.get("ORDERLOOM_WEBHOOK_MAX_BYTES", str(512 * 1024))),
        # Refunds (shared.services.refunds): the portal's public address, for the notify_url the payment providers
        # post refund notifications to (none: the providers' configured one), and how long a refund call may take.
        "PORTAL_BASE_URL": env.get("ORDERLOOM_PORTAL_BASE_URL", ""),
        "PAYMENT_API_TIMEOUT": float(env.get("ORDERLOOM_PAYMENT_API_TIMEOUT", "15")),
        "SYNC_FAILURE_RATE_ALERT": float(env.get("ORDERLOOM_SYNC_FAILURE_RATE_ALERT", "0.2")),
        "ALERT_ROBOT_KIND": env.get("ORDERLOOM_ALERT_ROBOT_KIND", ""),
        "ALERT_ROBOT_URL": env.get("ORDERLOOM_ALERT_ROBOT_URL", ""),
        "ALERT_ROBOT_SECRET": env.get("ORDERLOOM_ALERT_ROBOT_SECRET", ""),
        # Fulfilment: the e-waybill service (KDNiao-style), tracking push secrets.
        "SPLIT_SHIPMENTS": env.get("ORDERLOOM_SPLIT_SHIPMENTS", "0") == "1",  # split an order over warehouses
        "CARRIER_API_URL": env.get("ORDERLOOM_CARRIER_API_URL", "http://127.0.0.1:5003"),
        "CARRIER_BUSINESS_ID": env.get("ORDERLOOM_CARRIER_BUSINESS_ID", ""),
        "CARRIER_APP_KEY": env.get("ORDERLOOM_CARRIER_APP_KEY", ""),
        # Before a waybill is asked for, ask Kuaidi100's 运力 query (querymkt, at KUAIDI100_API_URL) for the carriers'
        # load and skip one at or over the scoring rules' load threshold for the backup carrier.
        "CARRIER_LOAD_CHECK": env.get("ORDERLOOM_CARRIER_LOAD_CHECK", "0") == "1",
        "KUAIDI100_SALT": env.get("ORDERLOOM_KUAIDI100_SALT", ""),
        "KUAIDI100_API_URL": env.get("ORDERLOOM_KUAIDI100_API_URL", "https://poll.kuaidi100.com"),
        "KUAIDI100_CUSTOMER": env.get("ORDERLOOM_KUAIDI100_CUSTOMER", ""),
        "KUAIDI100_KEY": env.get("ORDERLOOM_KUAIDI100_KEY", ""),
        # Door pickups of returns (Kuaidi100 商家寄件, shared/carriers/pickups.py): the secret that signs orders, where
        # its order callbacks go and the salt they are signed with.
        "KUAIDI100_SECRET": env.get("ORDERLOOM_KUAIDI100_SECRET", ""),
        "PICKUP_CALLBACK_URL": env.get("ORDERLOOM_PICKUP_CALLBACK_URL", ""),
        "PICKUP_SALT": env.get("ORDERLOOM_PICKUP_SALT", ""),
        "TRACK17_KEY": env.get("ORDERLOOM_TRACK17_KEY", ""),
        # After-sales (shared/services/after_sales.py): a return is refunded within this many hours of the warehouse
        # receiving it; the customer's countdown and the refund's SLA both read it.
        "AFTER_SALES_REFUND_HOURS": int(env.get("ORDERLOOM_AFTER_SALES_REFUND_HOURS", "48")),
        "AFTER_SALES_CHANNEL": env.get("ORDERLOOM_AFTER_SALES_CHANNEL", "AS"),
        # Invoices (issue 12, shared/finance/invoice_math.py): shipping is its own line with its own tax code; a
        # request is split into several invoices by rate (where the provider wants one rate per invoice), by the
        # maximum number of lines and by the per-invoice limit on 价税合计 (a conservative reading: a limit on the
        # tax-exclusive 金额 is then met too).
        "INVOICE_SHIPPING_TAX_CODE": env.get("ORDERLOOM_INVOICE_SHIPPING_TAX_CODE", "3010102020100000000"),
        "INVOICE_SHIPPING_TAX_NAME": env.get("ORDERLOOM_INVOICE_SHIPPING_TAX_NAME", "运输服务"),
        "INVOICE_SHIPPING_NAME": env.get("ORDERLOOM_INVOICE_SHIPPING_NAME", "运费"),
        "INVOICE_SHIPPING_TAX_RATE": int(env.get("ORDERLOOM_INVOICE_SHIPPING_TAX_RATE", "9")),
        "INVOICE_SPLIT_BY_RATE": env.get("ORDERLOOM_INVOICE_SPLIT_BY_RATE", "0") == "1",
        "INVOICE_MAX_LINES": int(env.get("ORDERLOOM_INVOICE_MAX_LINES", "100")),
        "INVOICE_AMOUNT_LIMIT": env.get("ORDERLOOM_INVOICE_AMOUNT_LIMIT", "10000.00"),
        # The invoicing provider (shared/finance/providers/): the loopback simulator by default.
        "INVOICE_PROVIDER_URL": env.get("ORDERLOOM_INVOICE_PROVIDER_URL", "http://127.0.0.1:5007"),
        "INVOICE_PROVIDER_APP_KEY": env.get("ORDERLOOM_INVOICE_PROVIDER_APP_KEY", "demo-app-key"),
        "INVOICE_PROVIDER_APP_SECRET": env.get("ORDERLOOM_INVOICE_PROVIDER_APP_SECRET", "demo-app-secret"),
        "INVOICE_PROVIDER_TIMEOUT": float(env.get("ORDERLOOM_INVOICE_PROVIDER_TIMEOUT", "10")),
        "INVOICE_SELLER_TAX_ID": env.get("ORDERLOOM_INVOICE_SELLER_TAX_ID", "91310000MA1FL8TQ7X"),
        "INVOICE_SELLER_NAME": env.get("ORDERLOOM_INVOICE_SELLER_NAME", "Orderloom 演示商户有限公司"),
        "INVOICE_ISSUER": env.get("ORDERLOOM_INVOICE_ISSUER", "开票员"),
        # Mail (shared/mail.py): no SMTP host, no mail. The customer site's address for links in mail.
        "SMTP_HOST": env.get("ORDERLOOM_SMTP_HOST", ""),
        "SMTP_PORT": int(env.get("ORDERLOOM_SMTP_PORT", "25")),
        "SMTP_USER": env.get("ORDERLOOM_SMTP_USER", ""),
        "SMTP_PASSWORD": env.get("ORDERLOOM_SMTP_PASSWORD", ""),
        "SMTP_STARTTLS": env.get("ORDERLOOM_SMTP_STARTTLS", "0") == "1",
        "SMTP_TIMEOUT": float(env.get("ORDERLOOM_SMTP_TIMEOUT", "10")),
        "MAIL_FROM": env.get("ORDERLOOM_MAIL_FROM", "invoices@orderloom.example"),
        "MAIL_FROM_NAME": env.get("ORDERLOOM_MAIL_FROM_NAME", "Orderloom"),
        "CUSTOMER_SITE_URL": env.get("ORDERLOOM_CUSTOMER_SITE_URL", "http://127.0.0.1:5001"),
    }
    if overrides:
        config.update(overrides)
    if config["ENV"] == "production":
        if config["SECRET_KEY"] == DEMO_SECRET_KEY or DEMO_DATA_KEY in config["DATA_KEYS"] \
                or config["BLIND_INDEX_KEY"] == DEMO_INDEX_KEY:
            raise RuntimeError("ORDERLOOM_SECRET_KEY, ORDERLOOM_DATA_KEYS and ORDERLOOM_INDEX_KEY must be set in "
                               "production")
        if not config["AUDIT_KEYS"] or DEMO_AUDIT_KEY in config["AUDIT_KEYS"]:
            raise RuntimeError("ORDERLOOM_AUDIT_KEYS must be set in production (the demo audit key is public)")
    return config
