"""How a portal form post ends: one service call, one commit, and a message that says what happened."""
from flask import flash, g
from flask_babel import gettext as _

from shared.extensions import db
from shared.services.errors import ServiceError


def held_for_approval(result):
    """The approval request a service raised instead of making the change (shared.services.approvals.gate)."""
    from shared.models import ApprovalRequest

    return result if isinstance(result, ApprovalRequest) else getattr(result, "approval_request", None)


def flash_held(held) -> None:
    flash(_("Sent for approval (request #%(id)s): nothing changes until it is approved.", id=held.id), "info")


def commit_or_refuse(action, success: str, failure: str | None = None, form=None) -> bool:
    """Run the service call and commit; a refusal rolls back, changes nothing and says why (also beside the
    field of `form` it names, so the form that is shown again carries its error). A change held for approval
    says so instead of the success message."""
    try:
        held = held_for_approval(action())
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash((failure or _("Not saved: %(message)s")) % {"message": refused.message}, "error")
        if form is not None and refused.field and refused.field in form:
            form[refused.field].errors = [*form[refused.field].errors, refused.message]
        return False
    g.approval_held = held
    if held is not None:
        flash_held(held)
    else:
        flash(success, "success")
    return True


def flash_form_errors(form) -> None:
    """Say which fields of a form were not filled in correctly."""
    details = "; ".join(f"{getattr(form, name).label.text if hasattr(form, name) else name}: "
                        f"{', '.join(str(error) for error in errors)}"  # lazy messages (FileRequired) too
                        for name, errors in form.errors.items())
    flash(_("Not saved: %(message)s") % {"message": details}, "error")
