"""Orders: the filtered list, the detail page, lifecycle actions, and revealing personal data."""
from flask import (Blueprint, abort, current_app, flash, g, make_response, redirect, render_template, request,
                   url_for)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.access import require_step_up, requires
from portal.forms import (AddressChangeForm, ConfirmForm, NoteForm, PriceChangeForm, RefundForm, TagForm,
                          TransitionForm)
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.extensions import db
from shared.history import describe as describe_event
from shared.labels import PAYMENT, STATUS, label, translated
from shared.lifecycle import OrderStatus
from shared.models import AuditEvent, CarrierAttempt, Channel, Reservation, Warehouse
from shared.order_search import (LIST_COLUMNS, SearchRefused, count_matching, find_orders, parse_filters,
                                 personal_values_in_query)
from shared.security.masking import may_reveal, order_contact
from shared.security.permissions import Visibility, can, visibility
from shared.services import approvals, order_notes, orders, platform_privacy, retention, second_factor, tracking
from shared.services.errors import ServiceError
from shared.services.validation import N_, say
from shared.timekeeping import utc_now
from shared.verbs import verb
from shared.web import staff_actor

PHONE_NOT_IN_ADDRESS = N_("Search by phone with the search form: a phone number is never sent in the address")

bp = Blueprint("orders", __name__, url_prefix="/orders")
PAGE_SIZE = 50


def status_label(code: str) -> str:
    return label(STATUS, code)


def _zone() -> str:
    return g.get("timezone") or "Asia/Shanghai"


PERSONAL_PARAMS = ("q", "phone_last4", "receiver")


class PersonalValueInAddress(ServiceError):
    status = 422
    code = "personal_value_in_url"


@bp.route("/", methods=["GET", "POST"])
@requires("orders", "view")
def index():
    """The order list. The filter form is POSTed, so a phone typed into the search box never appears in an
    address (browser history, proxy and server logs); a search without personal values answers with the
    bookmarkable GET address of the same list."""
    posted = request.method == "POST"
    values = request.form if posted else request.args
    error, personal = None, None
    try:
        if not posted and personal_values_in_query(request.args):
            raise PersonalValueInAddress(say(PHONE_NOT_IN_ADDRESS), field="q")
        filters = parse_filters(values, _zone(), drill_down=True)
        personal = filters.personal_kind()
        if posted and personal is None and not request.headers.get("HX-Request"):
            kept = {k: [v for v in vs if v] for k, vs in values.to_dict(flat=False).items() if k != "csrf_token"}
            return redirect(url_for("orders.index", **{k: vs for k, vs in kept.items() if vs}), 303)
        viewer = staff_actor(current_user)
        found = find_orders(filters, _zone(), cursor=values.get("cursor"), back=values.get("before"),
                            limit=PAGE_SIZE, viewer=viewer, door="portal", columns=LIST_COLUMNS)
        matched = count_matching(found, filters, _zone(), current_app.config["ORDER_LIST_COUNT_CAP"],
                                 first_page=not (values.get("cursor") or values.get("before")), viewer=viewer)
    except ServiceError as refused:
        if isinstance(refused, SearchRefused):
            db.session.commit()  # the refusal is logged, and an alarm raised when the rate is unusual
        else:
            db.session.rollback()
        error, found, matched, filters = refused, None, None, parse_filters({}, _zone())
    response = _list_page(found, matched, filters, error, values, personal, posted)
    db.session.commit()  # after rendering (a commit expires the rows): the access-log entry of the search
    return response


def matched_text(matched: tuple[int, bool] | None) -> str:
    """"Matching orders: 1,234", or, past the cap, that more match than were counted."""
    if matched is None:
        return ""
    count, capped = matched
    shown = format(count, ",")
    if capped:
        return _("More than %(cap)s orders match (not counted further)", cap=shown)
    return _("Matching orders: %(count)s", count=shown)


def _list_page(found, matched, filters, error, values, personal, posted):
    rows = found.rows if found is not None else []
    # Rows of LIST_COLUMNS: receiver and phone only (the list shows no address, so no street is read).
    contacts = {o.id: order_contact(o, current_user.role, address=False) for o in rows}
    # Links (sort, pages) carry the filters in the address, so never a personal value; the next page of a
    # personal-value search is a POST form carrying them in its body.
    link_args = values.copy()
    for key in ("csrf_token", "before") + (PERSONAL_PARAMS if personal else ()):
        link_args.pop(key, None)
    bulk = _bulk_context(rows)
    lists = reference_lists(with_assignees="assign" in bulk["bulk_actions"], owner_id=current_user.id)
    channels, warehouses, bulk["saved_filters"] = lists["channel"], lists["warehouse"], lists["filter"]
    if "assign" in bulk["bulk_actions"]:
        bulk["assignable_users"] = [(row.code, row.name) for row in lists["user"]]
        bulk["assignable_teams"] = [(row.code, row.name, row.name_en) for row in lists["team"]]
    context = {
        "orders": rows, "contacts": contacts, "next_cursor": found.next_cursor if found else None,
        "prev_cursor": found.prev_cursor if found else None, "matched": matched_text(matched),
        "matched_capped": bool(matched and matched[1]), "filters": filters, "error": error,
        "statuses": list(OrderStatus), "channels": channels, "warehouses": warehouses,
        "channel_names": {c.id: c.name for c in channels}, "warehouse_codes": {w.id: w.code for w in warehouses},
        # Looked up once per page, not once per row (a gettext and a URL build cost ~10 µs each, 50 rows).
        "status_names": translated(STATUS), "payment_names": translated(PAYMENT),
        "detail_prefix": url_for("orders.index"),
        "args": link_args, "form_values": values, "personal_search": personal,
        "can_search_phone": may_search_phone(current_user.role), "confirm_form": ConfirmForm(),
        "matched_count": matched[0] if matched else 0, **bulk,
        "can_search_name": visibility(current_user.role, "name") is Visibility.FULL, "order_tags": order_notes.TAGS,
    }
    status = 422 if error is not None and error.status in (400, 422) else error.status if error else 200
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "order-table":
        response = make_response(render_template("portal/orders/_table.html", **context), status)
        if posted and personal is None and error is None:
            response.headers["HX-Push-Url"] = url_for("orders.index", **link_args.to_dict(flat=False))
        return response
    return make_response(render_template("portal/orders/index.html", **context), status)


def _bulk_context(rows) -> dict:
    """What the list's bulk bar and saved filters need: the actions this role may start, each row's assignee, the
    user's saved filters (who orders can be assigned to comes with reference_lists)."""
    from shared.services import bulk_actions, order_assignment, saved_filters

    actions = bulk_actions.actions_for(current_user.role)
    context = {"bulk_actions": actions, "bulk_action_names": {a: bulk_actions.action_name(a) for a in actions},
               "bulk_max": bulk_actions.MAX_ORDERS, "saved_filter_keys": saved_filters.KEYS,
               "assignments": order_assignment.assignees_of([o.id for o in rows])}
    return context


def reference_lists(with_assignees: bool, owner_id: int) -> dict[str, list]:
    """The list page's small reference lists in ONE query (a UNION ALL, ordered by kind and code): the channels and
    warehouses of the filters, the viewer's own saved filters, and, when the role may assign, the active users and
    the teams orders can be assigned to. Each row has kind, id, code, name, name_en; a page pays one round trip for
    all of them (the page's query budget: tests/test_benchmarks.py)."""
    from sqlalchemy import literal, null, union_all

    from shared.models import StaffUser, Team
    from shared.models.bulk import SavedOrderFilter

    parts = [select(literal("channel").label("kind"), Channel.id.label("id"), Channel.code.label("code"),
                    Channel.name.label("name"), null().label("name_en")),
             select(literal("warehouse"), Warehouse.id, Warehouse.code, Warehouse.name, null()),
             select(literal("filter"), SavedOrderFilter.id, SavedOrderFilter.name, SavedOrderFilter.name, null())
             .where(SavedOrderFilter.owner_id == owner_id)]
    if with_assignees:
        parts += [select(literal("user"), StaffUser.id, StaffUser.username, StaffUser.display_name, null())
                  .where(StaffUser.active.is_(True)),
                  select(literal("team"), Team.id, Team.code, Team.name_zh, Team.name_en)]
    everything = union_all(*parts).subquery()
    found: dict[str, list] = {"channel": [], "warehouse": [], "filter": [], "user": [], "team": []}
    for row in db.session.execute(select(everything).order_by(everything.c.kind, everything.c.code)):
        found[row.kind].append(row)
    return found


def may_search_phone(role: str) -> bool:
    return visibility(role, "phone") is not Visibility.HIDDEN


def _load(order_no: str):
    try:
        return orders.get_order(order_no)
    except ServiceError as refused:
        if refused.status == 404 or refused.code in ("malformed_order_no", "order_no_check_failed"):
            abort(404)
        raise


@bp.get("/<order_no>")
@requires("orders", "view")
def detail(order_no: str):
    return _detail_page(_load(order_no))


def cancel_question(order) -> str:
    """The confirmation asked before a cancel: what it does, computed from the order as it is now."""
    consequence = orders.cancel_consequence(order, staff_actor(current_user))
    parts = [ngettext("Cancelling releases %(num)s unit of reserved stock.",
                      "Cancelling releases %(num)s units of reserved stock.", consequence.released_units)
             if consequence.released_units else _("Cancelling releases no stock (none is reserved).")]
    parts.append(_("The customer is told by mail.") if consequence.customer_told
                 else _("The customer is not told by mail (no address to mail)."))
    if consequence.paid:
        parts.append(_("The order is paid: the refund is made separately, and an approval rule may hold the cancel."))
    parts.append(_("A cancelled order cannot be reopened."))
    return " ".join(parts)


MOVE_QUESTIONS = {"closed": _l("Closing is final: the order can no longer change. Close it?")}


def _move_questions(order, moves) -> dict:
    """The confirmation per move that cannot be undone (cancel, close); others go at once."""
    targets = {m["to"] for m in moves}
    questions = {target: str(text) for target, text in MOVE_QUESTIONS.items() if target in targets}
    if "cancelled" in targets:
        questions["cancelled"] = cancel_question(order)
    return questions


def _detail_page(order, transition_form=None, failed_move: str | None = None, status: int = 200):
    """The order page; after a refused move, shown again (422) with that move's reason as it was typed."""
    # Each event told as a sentence in the viewer's language, personal fields as the viewer's role may see them.
    history = [(event, describe_event(event, current_user.role)) for event in db.session.execute(
        select(AuditEvent).where(AuditEvent.entity_type == "order", AuditEvent.entity_id == order.order_no)
        .order_by(AuditEvent.id)
    ).scalars()]
    reservations = db.session.execute(
        select(Reservation).options(selectinload(Reservation.warehouse))
        .where(Reservation.order_id == order.id).order_by(Reservation.id)
    ).scalars().all()
    shipment, tracking_events = tracking.timeline(order.id)
    attempts = db.session.execute(
        select(CarrierAttempt).where(CarrierAttempt.shipment_id == shipment.id)
        .order_by(CarrierAttempt.occurred_at, CarrierAttempt.id)
    ).scalars().all() if shipment is not None else []
    moves = orders.allowed_moves(order, current_user.role)
    return render_template(
        "portal/orders/detail.html", order=order, contact=order_contact(order, current_user.role),
        history=history, reservations=reservations, moves=moves,
        blocked_moves=orders.blocked_moves(order, current_user.role), move_questions=_move_questions(order, moves),
        failed_move=failed_move, shipment=shipment, tracking_events=tracking_events, attempts=attempts,
        can_reveal=may_reveal(current_user.role), transition_form=transition_form or TransitionForm(),
        payment_form=ConfirmForm(),
        can_record_payment=can(current_user.role, "payments", "edit") and order.payment_status == "unpaid"
        and order.status not in (OrderStatus.CANCELLED, OrderStatus.CLOSED),
        approval_trail=approvals.history_for("order", order.order_no), legal_hold=retention.order_hold(order),
        may_edit=can(current_user.role, "order_review", "edit"), address_refusal=orders.address_editable(order),
        price_refusal=orders.price_editable(order), address_form=AddressChangeForm(), price_form=PriceChangeForm(),
        **_invoice_context(order), **_refund_context(order), **_notes_context(order),
    ), status


def _notes_context(order) -> dict:
    """Staff notes and tags of the order, and the forms to add them for roles that may edit orders."""
    editable = can(current_user.role, "orders", "edit")
    return {"order_notes": order_notes.order_notes(order.id), "tags": order_notes.order_tags(order.id),
            "note_form": NoteForm() if editable else None, "tag_form": TagForm() if editable else None}


@bp.post("/<order_no>/notes")
@requires("orders", "edit")
def add_note(order_no: str):
    """A staff note on the order (audited; the text is escaped wherever it is shown)."""
    order = _load(order_no)
    form = NoteForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
    else:
        commit_or_refuse(lambda: order_notes.add_order_note(order, form.body.data, staff_actor(current_user)),
                         _("The note was added."))
    return redirect(url_for("orders.detail", order_no=order_no) + "#notes", 303)


@bp.post("/<order_no>/tags")
@requires("orders", "edit")
def add_tag(order_no: str):
    order = _load(order_no)
    form = TagForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
    else:
        commit_or_refuse(lambda: order_notes.add_tag(order, form.tag.data, staff_actor(current_user)),
                         _("The tag was added."))
    return redirect(url_for("orders.detail", order_no=order_no) + "#notes", 303)


@bp.post("/<order_no>/tags/<tag>/remove")
@requires("orders", "edit")
def remove_tag(order_no: str, tag: str):
    order = _load(order_no)  # the CSRF token is checked for every POST (CSRFProtect)
    commit_or_refuse(lambda: order_notes.remove_tag(order, tag, staff_actor(current_user)), _("The tag was removed."))
    return redirect(url_for("orders.detail", order_no=order_no) + "#notes", 303)


def _refund_context(order) -> dict:
    """The order's refunds, and the refund form for finance (a paid order with something left to refund)."""
    from shared.services import refunds

    if not can(current_user.role, "payments", "edit"):
        return {"order_refunds": None}
    rows = refunds.refunds_of(order)
    left = refunds.refundable(order)
    return {"order_refunds": rows, "refundable": left, "refunded": refunds.refunded_total(order),
            "refund_form": RefundForm() if left > 0 else None, "refund_status_label": refund_status_label}


def _invoice_context(order) -> dict:
    """The order's invoice history for roles that see invoices, and the request form for those who may ask."""
    if not can(current_user.role, "invoices", "view"):
        return {"invoice_requests": None}
    from portal.invoices import order_request_form
    from shared.labels import INVOICE_KIND, INVOICE_STATUS
    from shared.services import invoice_queue

    return {"invoice_requests": invoice_queue.requests_for_order(order.id),
            "invoice_statuses": translated(INVOICE_STATUS), "invoice_kinds": translated(INVOICE_KIND),
            "invoice_form": order_request_form(order) if can(current_user.role, "invoices", "edit") else None}


@bp.post("/<order_no>/address")
@requires("order_review", "edit")  # customer service's side: what the buyer asked for
def change_address(order_no: str):
    """A new shipping address (the buyer asked): one service call; a rule may send it for approval."""
    order = _load(order_no)
    form = AddressChangeForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
    else:
        address = {name: getattr(form, name).data for name in ("receiver", "phone", "province", "city", "district",
                                                               "street", "postal_code")}
        commit_or_refuse(lambda: orders.change_address(order, address, staff_actor(current_user), form.reason.data),
                         _("The address of order %(no)s was changed.", no=order_no),
                         failure=_("The address was not changed: %(message)s"))
    return redirect(url_for("orders.detail", order_no=order_no), 303)


@bp.post("/<order_no>/price")
@requires("order_review", "edit", step_up=True)
def change_price(order_no: str):
    """改价 before payment: line prices (fields `line-<id>`), discount, shipping fee; a sensitive operation."""
    order = _load(order_no)
    form = PriceChangeForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
    else:
        changes = {"lines": [{"id": key.removeprefix("line-"), "unit_price": value.strip()}
                             for key, value in request.form.items(multi=True)
                             if key.startswith("line-") and value.strip()]}
        for name in ("discount", "shipping_fee"):
            if (getattr(form, name).data or "").strip():
                changes[name] = getattr(form, name).data.strip()
        commit_or_refuse(lambda: orders.change_price(order, changes, staff_actor(current_user), form.reason.data),
                         _("The prices of order %(no)s were changed.", no=order_no),
                         failure=_("The prices were not changed: %(message)s"))
    return redirect(url_for("orders.detail", order_no=order_no), 303)


@bp.post("/<order_no>/refunds")
@requires("payments", "edit")
def refund(order_no: str):
    """Finance refunds part or all of what was paid: one service call (the provider, or the platform; a rule may
    hold it for approval)."""
    from shared.services import refunds

    order = _load(order_no)
    form = RefundForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for("orders.detail", order_no=order_no), 303)
    try:
        row = refunds.refund(order.order_no, form.amount.data, form.reason.data, staff_actor(current_user),
                             goods_returned=form.goods_returned.data)
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("The refund was not made: %(message)s", message=refused.message), "error")
        return redirect(url_for("orders.detail", order_no=order_no), 303)
    if row.status == "failed":
        flash(_("The payment provider refused the refund: %(message)s",
                message=": ".join(filter(None, (row.error_code, row.last_error)))), "error")
    else:
        flash(_("Refund %(no)s: %(status)s.", no=row.out_refund_no, status=refund_status_label(row.status)),
              "success")
    return redirect(url_for("orders.detail", order_no=order_no), 303)


REFUND_STATUS_LABELS = {"pending_approval": _l("waiting for approval"), "processing": _l("with the payment provider"),
                        "awaiting_platform": _l("waiting for the platform's refund"), "succeeded": _l("refunded"),
                        "failed": _l("refused"), "rejected": _l("approval rejected")}


def refund_status_label(code: str) -> str:
    return str(REFUND_STATUS_LABELS.get(code, code))


@bp.post("/<order_no>/reveal")
@requires("orders", "view", also=may_reveal)
def reveal(order_no: str):
    """Show the full receiver details to a role allowed to see them; every reveal goes to the access log."""
    order = _load(order_no)
    try:
        contact = platform_privacy.reveal_contact(order, staff_actor(current_user), "portal")
    except platform_privacy.DecryptFailed as failed:
        db.session.commit()  # the failed attempt stays in the access log; the order itself is unchanged
        return render_template("portal/orders/_contact.html", order=order, contact=order_contact(
            order, current_user.role), revealed=False, can_reveal=False, reveal_error=failed.message), failed.status
    db.session.commit()
    return render_template("portal/orders/_contact.html", order=order, contact=contact, revealed=True,
                           can_reveal=False, decrypted=order.platform_protected)


@bp.post("/<order_no>/transitions")
@requires("orders", "edit")
def transition(order_no: str):
    """One lifecycle move; refused, the page is shown again with the reason as typed and the refusal beside it."""
    order = _load(order_no)
    form = TransitionForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _detail_page(order, form, failed_move=form.to.data, status=422)
    if second_factor.transition_needs_step_up(order, form.to.data, current_user.role, form.reason.data):
        require_step_up()  # voiding a paid order: a fresh second verification of this session
    release = order.status == OrderStatus.ON_HOLD and form.to.data == order.status_before_hold
    done = verb("order", "release_hold" if release else form.to.data)
    if not commit_or_refuse(lambda: orders.transition_order(order, form.to.data, staff_actor(current_user),
                                                            form.reason.data),
                            _("%(action)s: done. Order %(no)s is now %(status)s.", action=done, no=order_no,
                              status=status_label(form.to.data)),
                            failure=_("The change was not made: %(message)s"), form=form):
        return _detail_page(_load(order_no), form, failed_move=form.to.data, status=422)
    return redirect(url_for("orders.detail", order_no=order_no), 303)


@bp.post("/<order_no>/payment")
@requires("payments", "edit")
def record_payment(order_no: str):
    order = _load(order_no)
    form = ConfirmForm()
    if form.validate_on_submit():
        commit_or_refuse(lambda: orders.record_payment(order, utc_now(), staff_actor(current_user)),
                         _("Payment recorded."), failure=_("The payment was not recorded: %(message)s"))
    return redirect(url_for("orders.detail", order_no=order_no), 303)
