"""Outbound webhooks: subscriptions (their secret is write-only, never shown), and the delivery log."""
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager, defer, joinedload

from portal.access import requires
from portal.forms import ConfirmForm, SubscriptionStateForm, WebhookSubscriptionForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared import labels
from shared.extensions import db
from shared.models import Order, OutboxEvent, WebhookDelivery, WebhookSubscription
from shared.services import outbox
from shared.services.errors import ServiceError
from shared.web import staff_actor

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
DELIVERIES_SHOWN = 200

bp.add_app_template_filter(lambda code: labels.label(labels.DELIVERY_STATUS, code), "delivery_status_label")


def _page(form=None, status: int = 200):
    subscriptions = db.session.execute(select(WebhookSubscription).options(defer(WebhookSubscription.secret))
                                       .order_by(WebhookSubscription.name, WebhookSubscription.id)).scalars().all()
    shown = request.args.get("status") if request.args.get("status") in labels.DELIVERY_STATUS else ""
    # One query: each delivery with its event (without the payload) and subscription (without the secret).
    query = (select(WebhookDelivery, Order.order_no)
             .join(WebhookDelivery.event).outerjoin(Order, Order.id == OutboxEvent.order_id)
             .options(contains_eager(WebhookDelivery.event).defer(OutboxEvent.payload),
                      joinedload(WebhookDelivery.subscription).defer(WebhookSubscription.secret))
             .order_by(WebhookDelivery.id.desc()).limit(DELIVERIES_SHOWN))
    if shown:
        query = query.where(WebhookDelivery.status == shown)
    counts = dict(db.session.execute(select(WebhookDelivery.status, func.count())
                                     .group_by(WebhookDelivery.status)).all())
    return render_template("portal/webhooks/index.html", subscriptions=subscriptions,
                           deliveries=db.session.execute(query).all(), shown=shown, counts=counts,
                           form=form or WebhookSubscriptionForm(formdata=None), state_form=ConfirmForm(),
                           limit=DELIVERIES_SHOWN), status


@bp.get("/")
@requires("webhooks", "view")
def index():
    return _page()


@bp.post("/subscriptions")
@requires("webhooks", "edit")
def create_subscription():
    form = WebhookSubscriptionForm()
    if form.validate_on_submit():
        try:
            outbox.create_subscription(form.name.data, form.url.data.strip(), form.secret.data,
                                       (form.events.data or "").strip() or "order.*", staff_actor(current_user))
            db.session.commit()
        except ServiceError as refused:
            db.session.rollback()
            errors = form[refused.field].errors if refused.field and refused.field in form else form.form_errors
            errors.append(refused.message)
        else:
            flash(_("Subscription %(name)s created.", name=form.name.data), "success")
            return redirect(url_for("webhooks.index"), 303)
    return _page(form, 422)


@bp.post("/subscriptions/<int:subscription_id>/state")
@requires("webhooks", "edit")
def set_state(subscription_id: int):
    subscription = db.get_or_404(WebhookSubscription, subscription_id, options=[defer(WebhookSubscription.secret)])
    form = SubscriptionStateForm()
    if form.validate_on_submit():
        active = form.state.data == "on"
        commit_or_refuse(lambda: outbox.set_active(subscription.id, active, staff_actor(current_user)),
                         _("Subscription %(name)s is now active.", name=subscription.name) if active
                         else _("Subscription %(name)s is now paused.", name=subscription.name))
    else:
        flash_form_errors(form)
    return redirect(url_for("webhooks.index"), 303)


@bp.post("/deliveries/<int:delivery_id>/redeliver")
@requires("webhooks", "edit")
def redeliver(delivery_id: int):
    delivery = db.get_or_404(WebhookDelivery, delivery_id)
    if ConfirmForm().validate_on_submit():
        commit_or_refuse(lambda: outbox.redeliver(delivery.id, staff_actor(current_user)),
                         _("Delivery %(id)s will be sent again.", id=delivery.id))
    return redirect(request.referrer if (request.referrer or "").startswith(request.host_url)
                    else url_for("webhooks.index"), 303)
