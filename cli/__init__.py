"""The `orderloom` command: demo, database, users, channels, audit, keys, worker, cron, benchmarks."""
import sys

import click

from shared.actors import Actor


def _app():
    from shared.appcore import create_core_app

    return create_core_app("orderloom.cli")


CLI_ACTOR = Actor(id=None, label="cli", role="admin", ip=None)


def _log_key_values() -> None:
    """Worker and cron log lines: time, level, logger, then the key=value message."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")


@click.group()
def main():
    """Orderloom: one order center for every channel."""


@main.command()
@click.option("--portal-port", default=5000, show_default=True)
@click.option("--customer-port", default=5001, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--orders", "order_count", default=2000, show_default=True, help="orders to seed on first run")
@click.option("--no-serve", is_flag=True, help="migrate and seed, print the sign-ins, then exit")
@click.option("--simulator-port", default=5002, show_default=True, help="channel simulator port (0: no simulator)")
def demo(portal_port, customer_port, host, order_count, no_serve, simulator_port):
    """Migrate a SQLite database, seed realistic data, serve both apps, live channels and background jobs."""
    from devtools.demo import seed as demo_module

    demo_module.run(host=host, portal_port=portal_port, customer_port=customer_port, order_count=order_count,
                    serve=not no_serve, simulator_port=simulator_port or None)


@main.command("simulate-carriers")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8901, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--step-seconds", default=30.0, show_default=True, help="each parcel moves one step this often")
@click.option("--kuaidi100", "kuaidi100_url", default=None, metavar="URL",
              help="push Kuaidi100 tracking here (e.g. http://127.0.0.1:5000/hooks/tracking/kuaidi100)")
@click.option("--17track", "track17_url", default=None, metavar="URL", help="push 17TRACK tracking here")
def simulate_carriers(host, port, seed, step_seconds, kuaidi100_url, track17_url):
    """Serve an e-waybill API and Kuaidi100 / 17TRACK tracking on loopback, parcels moving on their own."""
    from devtools.simulators.carriers import DEFAULT_CREDENTIALS
    from devtools.simulators.carriers.run import run

    _log_key_values()
    click.echo(f"carrier simulator on http://{host}:{port}; credentials: devtools.simulators.carriers.DEFAULT_CREDENTIALS")
    run(host=host, port=port, seed=seed, step_seconds=step_seconds,
        kuaidi100_target=(kuaidi100_url, DEFAULT_CREDENTIALS["kuaidi100"]["salt"]) if kuaidi100_url else None,
        track17_target=(track17_url, DEFAULT_CREDENTIALS["17track"]["key"]) if track17_url else None)


@main.command("simulate-invoicing")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5007, show_default=True)
@click.option("--credit", default="1000000.00", show_default=True, help="the credit line (授信额度), tax-exclusive")
@click.option("--issue-after-polls", default=1, show_default=True, help="issue on this query (0: at once)")
@click.option("--callback-url", default=None,
              help="push every issued (or failed) invoice here, signed, e.g. http://127.0.0.1:5000/hooks/invoicing/nuonuo")
def simulate_invoicing(host, port, credit, issue_after_polls, callback_url):
    """Serve a 诺诺-style invoicing platform on loopback (ORDERLOOM_INVOICE_PROVIDER_URL points at it)."""
    from decimal import Decimal

    from devtools.simulators.invoicing import run

    _log_key_values()
    click.echo(f"invoicing simulator on http://{host}:{port}" + (f", pushing to {callback_url}" if callback_url else ""))
    run(host=host, port=port, credit_total=Decimal(credit), issue_after_polls=issue_after_polls,
        callback_url=callback_url)


@main.command("simulate-channels")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8900, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--rate", default=60.0, show_default=True, help="order events per minute")
@click.option("--webhook", "webhooks", multiple=True, metavar="PLATFORM=URL",
              help="push shopify or woocommerce webhooks to URL (e.g. shopify=http://127.0.0.1:5000/hooks/SF), "
                   "signed with the simulator's webhook secret")
@click.option("--unknown-sku-rate", default=0.0, show_default=True, help="share of orders naming an unmapped SKU")
def simulate_channels(host, port, seed, rate, webhooks, unknown_sku_rate):
    """Serve Taobao, JD, Pinduoduo, Douyin, Shopify and WooCommerce APIs on loopback with a live order stream."""
    from devtools.simulators.channels import DEFAULT_CREDENTIALS
    from devtools.simulators.channels.run import run

    _log_key_values()
    targets = {}
    for item in webhooks:
        platform, _, url = item.partition("=")
        if platform not in ("shopify", "woocommerce") or not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{item!r}: expected shopify=URL or woocommerce=URL", param_hint="--webhook")
        targets[platform] = (url, DEFAULT_CREDENTIALS[platform]["webhook_secret"])
    click.echo(f"channel simulator on http://{host}:{port}/<platform>; "
               "credentials: devtools.simulators.channels.DEFAULT_CREDENTIALS")
    run(host=host, port=port, seed=seed, rate_per_minute=rate, webhook_targets=targets,
        unknown_sku_rate=unknown_sku_rate)


@main.command("simulate-payments")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8903, show_default=True)
@click.option("--wechatpay", "wechatpay_url", default=None, metavar="URL",
              help="send WeChat Pay notifications here (e.g. http://127.0.0.1:5000/hooks/pay/wechatpay/OS)")
@click.option("--alipay", "alipay_url", default=None, metavar="URL",
              help="send Alipay notifications here (e.g. http://127.0.0.1:5000/hooks/pay/alipay/MP)")
@click.option("--pay", "payments", multiple=True, metavar="OUT_TRADE_NO=AMOUNT",
              help="one notification for this order number and amount in yuan (repeatable)")
def simulate_payments(host, port, wechatpay_url, alipay_url, payments):
    """Serve WeChat Pay and Alipay bills on loopback and send signed payment notifications to the URLs given."""
    from decimal import Decimal, InvalidOperation

    from devtools.simulators.payments import run

    orders = []
    for item in payments:
        number, _, amount = item.partition("=")
        try:
            if not number or Decimal(amount) <= 0:
                raise InvalidOperation
        except InvalidOperation:
            raise click.BadParameter(f"{item!r}: expected OUT_TRADE_NO=AMOUNT (yuan)", param_hint="--pay")
        orders.append((number, amount))
    run(host=host, port=port, wechatpay_url=wechatpay_url, alipay_url=alipay_url, orders=orders, echo=click.echo)


@main.group("db")
def db_group():
    """Database schema (Alembic migrations)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision):
    """Bring the schema of DATABASE_URL up to date."""
    from shared.database import upgrade

    app = _app()
    upgrade(app.config["SQLALCHEMY_DATABASE_URI"], revision)
    click.echo(f"database at {revision}")


@main.group()
def users():
    """Staff accounts."""


@users.command("create")
@click.argument("username")
@click.option("--role", required=True, help="admin, ops_manager, customer_service, warehouse, finance, auditor")
@click.option("--display-name", default=None)
@click.option("--locale", default="zh_CN", show_default=True)
def users_create(username, role, display_name, locale):
    """Create a staff user; the password is prompted for, or read from standard input."""
    from shared.extensions import db
    from shared.services import staff
    from shared.services.errors import ServiceError

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    app = _app()
    with app.app_context():
        try:
            staff.create_user(username, password, role, CLI_ACTOR, display_name=display_name, locale=locale)
            db.session.commit()
        except ServiceError as refused:
            raise click.ClickException(refused.message)
    click.echo(f"created {username} ({role})")


@users.command("token")
@click.argument("username")
@click.option("--days", type=click.IntRange(1, 3650), default=None, help="lifetime (default 90)")
def users_token(username, days):
    """Issue an API token; it is printed once, as the last line."""
    from shared.extensions import db
    from shared.services import staff
    from shared.services.errors import ServiceError

    app = _app()
    with app.app_context():
        try:
            token = staff.issue_token(staff.get_user(username), CLI_ACTOR, days=days)
            db.session.commit()
        except ServiceError as refused:
            raise click.ClickException(refused.message)
    click.echo(f"API token for {username} (shown once; keep it secret):")
    click.echo(token)


@main.group()
def channels():
    """Sales channels."""


@channels.command("create")
@click.argument("code")
@click.option("--name", required=True, help="the shop's name as staff know it")
@click.option("--kind", required=True, help="taobao, jd, pinduoduo, douyin, wechat, own_shop, shopify, woocommerce, "
                                            "offline")
@click.option("--timezone", default="Asia/Shanghai", show_default=True, help="the zone the platform's times are in")
@click.option("--currency", default="CNY", show_default=True)
def channels_create(code, name, kind, timezone, currency):
    """Create a channel with a two-letter CODE (the prefix of its order numbers)."""
    from shared.extensions import db
    from shared.services import catalog
    from shared.services.errors import ServiceError

    app = _app()
    with app.app_context():
        try:
            channel = catalog.create_channel(code, name, kind, CLI_ACTOR, timezone=timezone, currency=currency)
            db.session.commit()
        except ServiceError as refused:
            raise click.ClickException(refused.message)
        click.echo(f"created channel {channel.code} ({channel.kind}, {channel.timezone}, {channel.currency})")


@channels.command("list")
def channels_list():
    """Every channel: code, kind, zone, currency, whether it is connected."""
    from shared.services import catalog, channel_settings

    app = _app()
    with app.app_context():
        for channel in catalog.all_channels():
            connection = channel_settings.connection_for(channel)
            state = "connected" if connection is not None and connection.base_url else "not connected"
            click.echo(f"{channel.code}\t{channel.kind}\t{channel.timezone}\t{channel.currency}\t"
                       f"{'active' if channel.active else 'inactive'}\t{state}\t{channel.name}")


@main.group()
def devices():
    """Handheld scanners and their tokens."""


@devices.command("list")
def devices_list():
    """Every device with its warehouse, token expiry, last use and state."""
    from shared.services import devices as device_service

    app = _app()
    with app.app_context():
        rows = device_service.list_devices()
        click.echo(f"{'name':<24}{'warehouse':<12}{'expires (UTC)':<19}{'last used (UTC)':<19}state")
        for device in rows:
            expires = f"{device.expires_at:%Y-%m-%d %H:%M}" if device.expires_at else "-"
            used = f"{device.last_used_at:%Y-%m-%d %H:%M}" if device.last_used_at else "-"
            click.echo(f"{device.name:<24}{device.warehouse.code:<12}{expires:<19}{used:<19}"
                       f"{device_service.state(device)}")


@devices.command("register")
@click.argument("name")
@click.option("--warehouse", required=True, help="warehouse code")
@click.option("--days", type=click.IntRange(1, 366), default=None, help="token lifetime (default 90)")
def devices_register(name, warehouse, days):
    """Register a handheld; its token is printed once, as the last line."""
    from shared.extensions import db
    from shared.services import devices as device_service
    from shared.services.errors import ServiceError

    app = _app()
    with app.app_context():
        try:
            device, token = device_service.register_device(name, warehouse, CLI_ACTOR, days=days)
            db.session.commit()
        except ServiceError as refused:
            raise click.ClickException(refused.message)
        click.echo(f"device {device.name} registered until {device.expires_at:%Y-%m-%d} (token shown once):")
    click.echo(token)


@devices.command("revoke")
@click.argument("name")
def devices_revoke(name):
    """Revoke a device's token at once (a lost or retired handheld)."""
    from shared.extensions import db
    from shared.services import devices as device_service
    from shared.services.errors import ServiceError

    app = _app()
    with app.app_context():
        try:
            device_service.revoke_device(device_service.get_device(name), CLI_ACTOR)
            db.session.commit()
        except ServiceError as refused:
            raise click.ClickException(refused.message)
    click.echo(f"device {name} revoked")


@main.group()
def audit():
    """The audit trail."""


STALLED_SEALER_S = 60


@audit.command("verify")
@click.option("--log", "log_name", type=click.Choice(("audit", "access", "stock", "all")), default="all",
              show_default=True, help="which chain: audit events, the access log, the stock ledger, or all")
def audit_verify(log_name):
    """Seal what waits, then check each chain and its signed checkpoints; exit 1 naming the first problem."""
    from shared.extensions import db
    from shared.services import sealing

    logs = None if log_name == "all" else (log_name,)
    app = _app()
    with app.app_context():
        try:
            sealing.seal_all(commit=db.session.commit, logs=logs)
        except sealing.SealRefused as refused:
            db.session.rollback()
            click.echo(f"sealer refused: {refused}", err=True)
        reports = sealing.verify_all(logs=logs)
        path = sealing.checkpoint_path()
    broken = False
    for report in reports:
        window = report.window
        waiting = (f"; {window.count} unsealed, oldest {window.oldest_age_s:.1f} s old" if window and window.count
                   else "; 0 unsealed")
        legacy = f" ({report.legacy} in the legacy sha256 chain)" if report.legacy else ""
        if report.intact:
            click.echo(f"{report.log} chain intact: {report.checked} events{legacy}, "
                       f"{report.checkpoints} checkpoints checked{waiting}")
        else:
            broken = True
            where = f" at #{report.problem.seq}" if report.problem.seq is not None else ""
            click.echo(f"{report.log} chain BROKEN after {report.checked} events{where}: {report.problem}", err=True)
    click.echo(f"checkpoints: {path}")
    stalled = [r for r in reports if r.window and r.window.count and r.window.oldest_age_s > STALLED_SEALER_S]
    for report in stalled:  # the window should stay about a second wide while `orderloom cron` runs
        click.echo(f"WARNING: {report.log} rows have waited {report.window.oldest_age_s:.0f} s to be sealed: is "
                   f"`orderloom cron` (the seal_audit_logs job) running?", err=True)
    if broken:
        sys.exit(1)


@audit.command("checkpoint")
def audit_checkpoint():
    """Seal, then append a signed checkpoint of every chain to the checkpoint file (and send it where configured)."""
    from shared.extensions import db
    from shared.services import sealing

    app = _app()
    with app.app_context():
        try:
            sealing.seal_all(commit=db.session.commit)
            lines = sealing.write_checkpoints()
            db.session.commit()
        except sealing.SealRefused as refused:
            raise click.ClickException(f"{refused}")
        sent = sealing.publish_checkpoints(lines)
        path = sealing.checkpoint_path()
    for line in lines:
        click.echo(f"{line['log']}: #{line['seq']} {line['mac']}")
    click.echo(f"written to {path}" + "".join(f"; sent to the {where}: {'ok' if ok else 'FAILED'}"
                                             for where, ok in sent.items()))


@audit.command("verify-archive")
@click.option("--log", "log_name", type=click.Choice(("audit", "access", "all")), default="all", show_default=True)
def audit_verify_archive(log_name):
    """Check the files retention archived old rows to: signatures, every row's MACs, each file chained onto the one
    before, the last ending at the chain head's pruned floor; exit 1 naming the first problem."""
    from shared.services import sealing

    app = _app()
    broken = False
    with app.app_context():
        folder = sealing.archive_dir()
        for name in ("audit", "access") if log_name == "all" else (log_name,):
            reports = sealing.verify_archives(name)
            for report in reports:
                if report.intact:
                    click.echo(f"{report.path.name}: intact, #{report.first}..#{report.last} ({report.checked} rows)")
                else:
                    broken = True
                    click.echo(f"{report.path.name}: BROKEN: {report.problem}", err=True)
            if not reports:
                click.echo(f"{name}: nothing archived yet")
    click.echo(f"archive: {folder}")
    if broken:
        sys.exit(1)


@main.group()
def retention():
    """Retention periods and the nightly run."""


@retention.command("run")
def retention_run():
    """Apply every retention period now (what the nightly job does) and print the counts per class."""
    from jobs.retention import apply_retention

    app = _app()
    with app.app_context():
        counts = apply_retention()
    for code, count in counts.items():
        click.echo(f"{code}: {count}")


@audit.command("new-key")
def audit_new_key():
    """Print a new audit key: put it first in ORDERLOOM_AUDIT_KEYS and keep the old ones after it."""
    from shared.services.sealing import key_id_of, new_audit_key

    key = new_audit_key()
    click.echo(f"key id {key_id_of(key)}")
    click.echo(key)


@db_group.command("grant-app-role")
@click.argument("role")
@click.option("--schema", default="public", show_default=True)
@click.option("--print-sql", is_flag=True, help="print the statements instead of running them")
def db_grant_app_role(role, schema, print_sql):
    """Let ROLE (an existing PostgreSQL role) use Orderloom without rewriting the audit chains."""
    from sqlalchemy import create_engine

    from shared.security.app_role import app_role_sql

    try:
        statements = app_role_sql(role, schema)
    except ValueError as refused:
        raise click.BadParameter(str(refused))
    if print_sql:
        click.echo(";\n".join(statements) + ";")
        return
    app = _app()
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    if engine.dialect.name != "postgresql":
        raise click.ClickException("database roles are a PostgreSQL feature; SQLite has triggers only")
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
    engine.dispose()
    click.echo(f"{role} may now read and add to the chained logs of {schema}, and fill their seal columns once")


@main.group()
def keys():
    """Encryption keys for personal data."""


@keys.command("new")
def keys_new():
    """Print a new data key; put it first in ORDERLOOM_DATA_KEYS, then run `keys rotate`."""
    from shared.security.crypto import new_key

    click.echo(new_key())


@keys.command("rotate")
@click.option("--as", "username", required=True, help="the admin the rotation is done as (audited)")
def keys_rotate(username):
    """Re-encrypt every encrypted value with the newest key (the first of ORDERLOOM_DATA_KEYS): done as an admin who
    confirms with a current second-factor code (read from the terminal, or the first line of standard input)."""
    from shared.extensions import db
    from shared.services.errors import ServiceError
    from shared.services.keys import authorise, rotate_all

    code = click.prompt("second-factor code", hide_input=True, err=True)
    app = _app()
    with app.app_context():
        try:
            actor = authorise(username, code)
        except ServiceError as refused:
            db.session.commit()  # the refusal, the failure count and any lock stay
            raise click.ClickException(f"not rotated: {refused.message}")
        count = rotate_all(actor)
        db.session.commit()
    click.echo(f"re-encrypted {count} values as {username}")


@main.command()
@click.option("--burst", is_flag=True, help="work until the queues are empty, then exit")
@click.option("--simple", is_flag=True, help="run jobs in this process (no fork): faster, less isolated")
def worker(burst, simple):
    """Run an RQ worker on the Orderloom queues (needs REDIS_URL)."""
    from jobs.worker import run_worker

    _log_key_values()
    app = _app()
    with app.app_context():
        run_worker(burst=burst, simple=simple)


@main.command()
def cron():
    """Enqueue the periodic jobs on their schedule (needs REDIS_URL)."""
    from jobs.worker import run_cron

    _log_key_values()
    app = _app()
    with app.app_context():
        run_cron()


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args):
    """Benchmarks: `orderloom bench --help` lists them; figures go to docs/PERFORMANCE.md."""
    from devtools.bench import orders as benchmarks

    sys.exit(benchmarks.main(list(args)))
