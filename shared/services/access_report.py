"""The access report for auditors (issue 11 item 7): who saw how much personal data, and what looks out of place.

For a range of merchant-zone calendar days (at most a year) it gathers, each in a few set queries:

(a) the 10 accounts that saw the most personal records: an access-log entry that showed personal fields counts one
    record, the file of an export with personal columns counts its rows (refused or failed attempts, downloads of
    a file already counted and traces count nothing);
(b) exports asked for outside working hours: 00:00-06:00 in the merchant's zone (MERCHANT_TIMEZONE);
(c) exports of ACCESS_REPORT_LARGE_RECORDS (5,000) records or more (a reveal shows one record, so only an
    export reaches it);
(d) refused attempts per account: 403s of the permission table (`access.forbidden`), step-ups refused, second
    factor codes refused, self-approvals refused;
(e) staff sign-ins from an address the account had not signed in from before, looking back from the sign-in to
    ACCESS_REPORT_LOOKBACK_DAYS (90) before the range's first day;
(f) the audit chains' signed checkpoints written in the range, each with its signature and chain verify result.
    Each chain is verified from where the last report's verify reached (sealing.verify_all(incremental=True)):
    a row sealed since is hashed once, not on every load; the rows below that point are held to it by their
    count, the MAC at the point and each checkpoint's MAC, without hashing them again (`audit verify` walks all).

It is made as a governed export (kind `access_report`, shared/services/export_kinds.py) in XLSX or PDF, in the
requester's language, so it carries the watermark, expires and is access-logged like every export; the portal shows
the same figures on /audit/access-report. `request_monthly` asks for last month's report for every auditor.
"""
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import aliased

from shared import timekeeping
from shared.actors import SYSTEM, Actor
from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent, ExportRequest, StaffUser
from shared.services.errors import ValidationFailed

KIND = "access_report"
FORMATS = ("xlsx", "pdf")
MAX_DAYS = 366  # a year, leap day included
TOP_ACCOUNTS = 10
NIGHT_START, NIGHT_END = time(0, 0), time(6, 0)  # outside working hours, merchant zone
DEFAULT_LARGE_RECORDS = 5000
DEFAULT_LOOKBACK_DAYS = 90
# Access-log actions that showed nothing: a refusal or a failure, a download of a file counted when it was made.
NOT_SEEN_SUFFIXES = ("_refused", ":decrypt_refused", ":decrypt_timeout", ":decrypt_failed")
NOT_SEEN_ACTIONS = ("download", "trace")
REFUSALS = {"access.forbidden": "forbidden", "step_up.refused": "step_up", "second_factor.refused": "second_factor",
            "approval.refused": "self_approval"}
STAFF_SIGN_IN = "user.sign_in"  # shared/services/sign_in.py: `<prefix>.sign_in`, prefix "user" for staff


# --- the range ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """Merchant-zone calendar days [first, last], and the UTC half-open range they cover."""

    first: date
    last: date
    zone: str

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), ZoneInfo(self.zone))

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), ZoneInfo(self.zone))

    def days(self) -> Iterable[date]:
        day = self.first
        while day <= self.last:
            yield day
            day += timedelta(days=1)


def _day(value, name: str) -> date:
    if isinstance(value, date):
        return value
    text = str(value or "").strip()
    if not text:
        raise ValidationFailed(_("Give the report's %(which)s day.", which=_field_name(name)), field=name,
                               code="invalid_range")
    try:
        return date.fromisoformat(text[:10]) if len(text) == 10 else date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(_("%(which)s is not a date (YYYY-MM-DD).", which=_field_name(name)), field=name,
                               code="invalid_range") from None


def _field_name(name: str) -> str:
    return _("first") if name == "date_from" else _("last")


def period(date_from, date_to, zone: str | None = None) -> Period:
    """The report's range, checked: both days given, the last not before the first, at most a year."""
    zone = zone or current_app.config.get("MERCHANT_TIMEZONE", "Asia/Shanghai")
    first, last = _day(date_from, "date_from"), _day(date_to, "date_to")
    if last < first:
        raise ValidationFailed(_("The range ends (%(last)s) before it starts (%(first)s).", first=first.isoformat(),
                                 last=last.isoformat()), field="date_to", code="invalid_range")
    if (last - first).days + 1 > MAX_DAYS:
        raise ValidationFailed(_("The range is longer than a year (%(days)s days): choose at most %(max)s days.",
                                 days=(last - first).days + 1, max=MAX_DAYS), field="date_to", code="range_too_long")
    return Period(first, last, zone)


def clean_filters(filters: dict) -> dict:
    """An export's filters: the range (checked) and the threshold and lookback configured now (kept on the export,
    so the file says which it used)."""
    checked = period(filters.get("date_from"), filters.get("date_to"))
    return {"date_from": checked.first.isoformat(), "date_to": checked.last.isoformat(),
            "large_records": large_records(), "lookback_days": lookback_days()}


def large_records() -> int:
    return int(current_app.config.get("ACCESS_REPORT_LARGE_RECORDS") or DEFAULT_LARGE_RECORDS)


def lookback_days() -> int:
    return int(current_app.config.get("ACCESS_REPORT_LOOKBACK_DAYS") or DEFAULT_LOOKBACK_DAYS)


def last_month(now: datetime | None = None, zone: str | None = None) -> tuple[date, date]:
    """The calendar month before the current one in the merchant's zone: (first day, last day)."""
    zone = zone or current_app.config.get("MERCHANT_TIMEZONE", "Asia/Shanghai")
    today = timekeeping.local_date(now or timekeeping.utc_now(), zone)
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


# --- the figures -------------------------------------------------------------------------------------------

@dataclass
class AccessReport:
    period: Period
    large_records: int
    lookback_days: int
    top_accounts: list[dict] = field(default_factory=list)
    night_exports: list[dict] = field(default_factory=list)
    large_exports: list[dict] = field(default_factory=list)
    refusals: list[dict] = field(default_factory=list)
    new_addresses: list[dict] = field(default_factory=list)
    checkpoints: list[dict] = field(default_factory=list)

    def row_count(self) -> int:
        return sum(len(rows) for rows in (self.top_accounts, self.night_exports, self.large_exports, self.refusals,
                                          self.new_addresses, self.checkpoints))


def build(date_from, date_to, large: int | None = None, lookback: int | None = None,
          zone: str | None = None) -> AccessReport:
    """Every section of the report for the range (validated first: a bad range raises and reads nothing)."""
    span = period(date_from, date_to, zone)
    report = AccessReport(span, large or large_records(), lookback or lookback_days())
    report.top_accounts = top_accounts(span)
    report.night_exports = night_exports(span)
    report.large_exports = large_exports(span, report.large_records)
    report.refusals = refusals(span)
    report.new_addresses = new_addresses(span, report.lookback_days)
    report.checkpoints = checkpoints(span)
    return report


def _in(column, span: Period):
    return and_(column >= span.start, column < span.end)


def _local(moment: datetime | None, zone: str) -> str:
    local = timekeeping.to_zone(moment, zone)
    return local.strftime("%Y-%m-%d %H:%M:%S") if local else ""


def top_accounts(span: Period, limit: int = TOP_ACCOUNTS) -> list[dict]:
    """(a) One GROUP BY over the access log, the export's row count joined in for the files it made."""
    entry = AccessLogEntry
    is_export = entry.action == "export"
    seen = and_(_in(entry.occurred_at, span), entry.fields != "", entry.action.notin_(NOT_SEEN_ACTIONS),
                *[~entry.action.endswith(suffix) for suffix in NOT_SEEN_SUFFIXES])
    records = case((is_export, func.coalesce(ExportRequest.row_count, 0)), else_=1)
    rows = db.session.execute(
        select(entry.actor_label, func.sum(records).label("records"),
               func.sum(case((is_export, 0), else_=1)).label("reveals"),
               func.sum(case((is_export, 1), else_=0)).label("exports"),
               func.sum(case((is_export, func.coalesce(ExportRequest.row_count, 0)), else_=0)).label("export_rows"))
        .select_from(entry)
        .outerjoin(ExportRequest, and_(is_export, ExportRequest.public_id == entry.entity_id))
        .where(seen).group_by(entry.actor_label)
        .order_by(func.sum(records).desc(), entry.actor_label).limit(limit)).all()
    return [{"account": row.actor_label, "records": int(row.records or 0), "reveals": int(row.reveals or 0),
             "exports": int(row.exports or 0), "export_rows": int(row.export_rows or 0)} for row in rows]


def _night_windows(span: Period):
    """00:00-06:00 of every day of the range, each as a UTC range (exact across DST changes of the zone)."""
    tz = ZoneInfo(span.zone)
    return [and_(ExportRequest.created_at >= datetime.combine(day, NIGHT_START, tz),
                 ExportRequest.created_at < datetime.combine(day, NIGHT_END, tz)) for day in span.days()]


def _export_row(export: ExportRequest, zone: str) -> dict:
    return {"export_id": export.public_id, "kind": export.kind, "format": export.format,
            "account": export.requested_by_label, "asked_at": _local(export.created_at, zone),
            "status": export.status, "rows": export.row_count, "personal": bool(export.personal),
            "revealed": export.revealed_fields or ""}


def night_exports(span: Period) -> list[dict]:
    """(b) Exports asked for between 00:00 and 06:00 merchant time, one query (a range per night, OR-ed)."""
    found = db.session.execute(
        select(ExportRequest).where(_in(ExportRequest.created_at, span), or_(*_night_windows(span)))
        .order_by(ExportRequest.created_at, ExportRequest.id)).scalars()
    return [_export_row(export, span.zone) for export in found]


def large_exports(span: Period, threshold: int) -> list[dict]:
    """(c) Export files made in the range with `threshold` rows or more."""
    found = db.session.execute(
        select(ExportRequest).where(_in(ExportRequest.finished_at, span), ExportRequest.row_count >= threshold)
        .order_by(ExportRequest.row_count.desc(), ExportRequest.id)).scalars()
    return [_export_row(export, span.zone) for export in found]


def refusals(span: Period) -> list[dict]:
    """(d) Refused attempts per account, one GROUP BY with a count per kind of refusal."""
    counts = [func.sum(case((AuditEvent.action == action, 1), else_=0)).label(name)
              for action, name in REFUSALS.items()]
    rows = db.session.execute(
        select(AuditEvent.actor_label, func.count().label("total"), *counts)
        .where(_in(AuditEvent.occurred_at, span), AuditEvent.action.in_(tuple(REFUSALS)))
        .group_by(AuditEvent.actor_label).order_by(func.count().desc(), AuditEvent.actor_label)).all()
    return [{"account": row.actor_label, "total": int(row.total),
             **{name: int(getattr(row, name) or 0) for name in REFUSALS.values()}} for row in rows]


def new_addresses(span: Period, lookback: int) -> list[dict]:
    """(e) Staff sign-ins in the range from an address the account had not signed in from earlier, back to `lookback`
    days before the range's first day (NOT EXISTS on the same account, address and action; the action and actor
    indexes serve it)."""
    earlier = aliased(AuditEvent)
    before = select(literal(1)).where(
        earlier.action == STAFF_SIGN_IN, earlier.actor_id == AuditEvent.actor_id, earlier.ip == AuditEvent.ip,
        earlier.occurred_at < AuditEvent.occurred_at, earlier.id != AuditEvent.id,
        earlier.occurred_at >= span.start - timedelta(days=lookback))
    rows = db.session.execute(
        select(AuditEvent.actor_label, AuditEvent.ip, AuditEvent.occurred_at, AuditEvent.actor_id)
        .where(AuditEvent.action == STAFF_SIGN_IN, _in(AuditEvent.occurred_at, span), AuditEvent.ip.is_not(None),
               ~before.exists())
        .order_by(AuditEvent.occurred_at, AuditEvent.id)).all()
    # Two sign-ins from one new address within the range: the first is new, the second is not (the subquery
    # sees the first as an earlier sign-in).
    return [{"account": row.actor_label, "ip": row.ip, "signed_in_at": _local(row.occurred_at, span.zone)}
            for row in rows]


def checkpoints(span: Period) -> list[dict]:
    """(f) The signed checkpoints written in the range, each with its signature check and whether its chain
    verifies up to that checkpoint (one verify of each log concerned, from its last verified point on; the point
    reached is kept in the caller's transaction)."""
    import hmac

    from shared.services import sealing

    try:
        lines = sealing.read_checkpoints()
    except sealing.CheckpointFileError as unreadable:
        return [{"log": "", "seq": None, "at": "", "signature": False, "verified": False, "detail": str(unreadable)}]
    chosen = []
    for line in lines:
        try:
            at = timekeeping.parse_aware(line.get("at") or "", "at")
        except ValidationFailed:
            at = None
        if at is not None and span.start <= at < span.end:
            chosen.append((at, line))
    if not chosen:
        return []
    ring = sealing.keys_by_id()
    logs = sorted({line["log"] for _at, line in chosen if line.get("log") in sealing.LOGS})
    reports = {report.log: report for report in sealing.verify_all(logs=logs, incremental=True)}
    shown = []
    for at, line in chosen:
        key = ring.get(line.get("key_id") or "")
        signed = key is not None and hmac.compare_digest(sealing.checkpoint_signature(line, key),
                                                         str(line.get("sig", "")))
        report = reports.get(line.get("log"))
        problem = report.problem if report is not None else None
        seq = line.get("seq") if isinstance(line.get("seq"), int) else None
        chain_ok = report is not None and (problem is None or (problem.seq is not None and seq is not None
                                                               and seq < problem.seq))
        verified = signed and chain_ok
        detail = "" if verified else (_("signature fails") if not signed else str(problem or _("unknown log")))
        shown.append({"log": line.get("log", ""), "seq": seq, "at": _local(at, span.zone), "signature": signed,
                      "verified": verified, "detail": detail})
    return shown


# --- the file ----------------------------------------------------------------------------------------------

SECTIONS = (
    ("top_accounts", _l("Top accounts by personal records seen"),
     (("account", _l("Account")), ("records", _l("Personal records seen")), ("reveals", _l("Reveals")),
      ("exports", _l("Personal exports")), ("export_rows", _l("Rows in personal exports")))),
    ("night_exports", _l("Exports outside working hours (00:00–06:00 merchant time)"),
     (("export_id", _l("Export id")), ("account", _l("Account")), ("asked_at", _l("Asked at")),
      ("kind", _l("What")), ("rows", _l("Rows")), ("personal", _l("Personal data")), ("status", _l("State")))),
    ("large_exports", _l("Exports of many records"),
     (("export_id", _l("Export id")), ("account", _l("Account")), ("asked_at", _l("Asked at")),
      ("kind", _l("What")), ("rows", _l("Rows")), ("personal", _l("Personal data")), ("status", _l("State")))),
    ("refusals", _l("Refused attempts per account"),
     (("account", _l("Account")), ("total", _l("All refusals")), ("forbidden", _l("Forbidden (403)")),
      ("step_up", _l("Step-up refused")), ("second_factor", _l("Second-factor code refused")),
      ("self_approval", _l("Self-approval refused")))),
    ("new_addresses", _l("Sign-ins from new addresses"),
     (("account", _l("Account")), ("ip", _l("Address")), ("signed_in_at", _l("Signed in at")))),
    ("checkpoints", _l("Signed audit checkpoints"),
     (("log", _l("Chain")), ("seq", _l("Sequence")), ("at", _l("Written at")), ("signature", _l("Signature valid")),
      ("verified", _l("Verified")), ("detail", _l("Problem")))),
)


def _shown(value):
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    return "" if value is None else value


def sections(report: AccessReport) -> list[dict]:
    """The report as titled tables in the reader's language: what the page, the XLSX and the PDF all show."""
    out = []
    for name, title, columns in SECTIONS:
        rows = getattr(report, name)
        heading = str(title)
        if name == "large_exports":
            count = "{:,}".format(report.large_records)
            heading = _("Exports of %(count)s records or more", count=count)
        if name == "new_addresses":
            heading = _("Sign-ins from addresses new to the account (looking back %(days)s days)",
                        days=report.lookback_days)
        out.append({"name": name, "title": heading, "headers": [str(label) for _key, label in columns],
                    "keys": [key for key, _label in columns],
                    "rows": [[_shown(row.get(key)) for key, _label in columns] for row in rows]})
    return out


def summary_lines(report: AccessReport) -> list[str]:
    span = report.period
    return [_("Access report %(first)s – %(last)s (%(zone)s)", first=span.first.isoformat(),
              last=span.last.isoformat(), zone=span.zone),
            _("Made at %(moment)s", moment=_local(timekeeping.utc_now(), span.zone))]


def xlsx_bytes(report: AccessReport, watermark) -> bytes:
    """One workbook: a sheet per section, each with the watermark line on top, in its printed header and footer,
    and the export id in the document properties and the very hidden marker sheet (as every governed export)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    from shared import exports as files

    workbook = Workbook(write_only=True)
    bold, italic = Font(bold=True), Font(italic=True)
    for number, section in enumerate(sections(report), start=1):
        sheet = workbook.create_sheet(title=files._sheet_title(f"{number} {section['title']}"))
        if watermark is not None:
            files._mark_workbook(workbook, sheet, watermark)
            line = WriteOnlyCell(sheet, value=files._xlsx_text(watermark.sheet_line()))
            line.font = italic
            sheet.append([line])
        for text in summary_lines(report):
            sheet.append([files._xlsx_text(text)])
        title = WriteOnlyCell(sheet, value=files._xlsx_text(section["title"]))
        title.font = bold
        sheet.append([title])
        header = []
        for text in section["headers"]:
            cell = WriteOnlyCell(sheet, value=files._xlsx_text(text))
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        for row in section["rows"]:
            sheet.append([value if isinstance(value, int) else files._xlsx_text(str(value)) for value in row])
        if not section["rows"]:
            sheet.append([files._xlsx_text(_("Nothing in this range."))])
    if watermark is not None:
        marker = workbook.create_sheet(title=files.MARKER_SHEET)
        marker.sheet_state = "veryHidden"
        for key, value in (("export_id", watermark.export_id), ("exporter", watermark.username),
                           ("exporter_name", watermark.display_name), ("exported_at", watermark.moment),
                           ("zone", watermark.zone), ("kind", watermark.kind)):
            marker.append([key, files._xlsx_text(value)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def pdf_bytes(report: AccessReport, watermark) -> bytes:
    """The same tables as a PDF (WeasyPrint, Noto CJK for Chinese), the watermark line on every page and the export
    id in the document's metadata."""
    from weasyprint import HTML

    html = render_template("pdf/access_report.html", sections=sections(report), summary=summary_lines(report),
                           watermark=watermark.line()[2:] if watermark is not None else "",
                           export_id=watermark.export_id if watermark is not None else "",
                           exporter=watermark.exporter if watermark is not None else "")
    return HTML(string=html, base_url=current_app.root_path).write_pdf()


def document(filters: dict, reader, format: str, watermark) -> tuple[bytes, int]:
    """The export pipeline's hook (shared/services/export_kinds.py): the file and how many rows it holds."""
    report = build(filters["date_from"], filters["date_to"], large=filters.get("large_records"),
                   lookback=filters.get("lookback_days"), zone=reader.zone)
    content = pdf_bytes(report, watermark) if format == "pdf" else xlsx_bytes(report, watermark)
    return content, report.row_count()


# --- the monthly report ------------------------------------------------------------------------------------

def auditors() -> list[StaffUser]:
    """Active staff whose role may read the access log and export (the report's audience)."""
    from shared.security.permissions import can

    users = db.session.execute(select(StaffUser).where(StaffUser.active.is_(True)).order_by(StaffUser.id)).scalars()
    return [user for user in users if can(user.role, "access_log", "view") and can(user.role, "exports", "edit")]


def request_monthly(now: datetime | None = None, format: str = "xlsx") -> list[ExportRequest]:
    """Ask for last month's report for every auditor, once: an auditor who already has it is skipped, so the job
    may run every hour. Each file is the auditor's own governed export (on My exports, 24 h, 3 downloads)."""
    from shared.services import audit, exports

    first, last = last_month(now)
    wanted = {"date_from": first.isoformat(), "date_to": last.isoformat()}
    made = []
    for user in auditors():
        earlier = db.session.execute(select(ExportRequest.filters).where(
            ExportRequest.kind == KIND, ExportRequest.requested_by_id == user.id,
            ExportRequest.created_at >= datetime.combine(last + timedelta(days=1), time(),
                                                         ZoneInfo(current_app.config["MERCHANT_TIMEZONE"]))))
        if any((f or {}).get("monthly") and (f or {}).get("date_from") == wanted["date_from"]
               for f in earlier.scalars()):
            continue
        export = exports.request_export(KIND, format, wanted, Actor.for_staff(user), now=now)
        export.filters = {**export.filters, "monthly": True}
        audit.record(SYSTEM, "access_report.monthly", "export", export.public_id,
                     after={"for": user.username, **wanted})
        made.append(export)
    return made
