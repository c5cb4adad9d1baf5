"""Saved filters of the order list: save the filters shown, apply one, delete one; each user sees only their own."""
from flask import Blueprint, abort, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.access import requires
from portal.forms import ConfirmForm
from shared.extensions import db
from shared.services import saved_filters
from shared.services.errors import ServiceError
from shared.web import staff_actor

bp = Blueprint("saved_filters", __name__, url_prefix="/orders/saved-filters")


def _load(filter_id: int):
    try:
        return saved_filters.for_owner_or_404(filter_id, current_user.id)
    except ServiceError:
        abort(404)


@bp.post("/")
@requires("orders", "view")
def save():
    """Save the list's filters (sent with the form) under the name given."""
    if not ConfirmForm().validate_on_submit():
        flash(_("Not saved: the form expired; try again."), "error")
        return redirect(url_for("orders.index"), 303)
    try:
        row = saved_filters.save(staff_actor(current_user), request.form.get("name"), request.form,
                                 g.get("timezone") or "Asia/Shanghai")
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("Not saved: %(message)s", message=refused.message), "error")
        return redirect(url_for("orders.index"), 303)
    flash(_("Filter %(name)s saved.", name=row.name), "success")
    return redirect(url_for("saved_filters.apply", filter_id=row.id), 303)


@bp.get("/<int:filter_id>")
@requires("orders", "view")
def apply(filter_id: int):
    """The order list with the saved filters."""
    row = _load(filter_id)
    return redirect(url_for("orders.index", **row.query), 303)


@bp.post("/<int:filter_id>/delete")
@requires("orders", "view")
def delete(filter_id: int):
    row = _load(filter_id)
    if ConfirmForm().validate_on_submit():
        name = row.name
        saved_filters.delete(row, staff_actor(current_user))
        db.session.commit()
        flash(_("Filter %(name)s deleted.", name=name), "success")
    return redirect(url_for("orders.index"), 303)
