"""Portal forms (WTForms via Flask-WTF, so every form carries a CSRF token)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import (BooleanField, DateField, IntegerField, PasswordField, RadioField, SelectField, StringField,
                     TextAreaField)
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, NumberRange, Optional

from shared.appcore import LANGUAGES
from shared import labels
from shared.labels import PAYMENT, REFUND, STATUS, label
from shared.services.channel_settings import LIFECYCLE_TARGETS, PAYMENT_CHOICES, REFUND_CHOICES


class SignInForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=256)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=256)])
    confirm_password = PasswordField(_l("New password again"),
                                     validators=[DataRequired(), EqualTo("new_password",
                                                                         message=_l("The two new passwords differ."))])


class SecondFactorForm(FlaskForm):
    code = StringField(_l("Code from your authenticator app, or a recovery code"),
                       validators=[DataRequired(), Length(max=64)])


class TransitionForm(FlaskForm):
    to = StringField(validators=[DataRequired(), Length(max=20)])
    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=500)])


class AddressChangeForm(FlaskForm):
    """A new shipping address for an order (the service checks it as a new order's address)."""

    receiver = StringField(_l("Receiver"), validators=[DataRequired(), Length(max=60)])
    phone = StringField(_l("Phone"), validators=[DataRequired(), Length(max=32)])
    province = StringField(_l("Province"), validators=[DataRequired(), Length(max=40)])
    city = StringField(_l("City"), validators=[DataRequired(), Length(max=40)])
    district = StringField(_l("District"), validators=[DataRequired(), Length(max=40)])
    street = StringField(_l("Street"), validators=[DataRequired(), Length(max=200)])
    postal_code = StringField(_l("Postal code"), validators=[Optional(), Length(max=12)])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class PriceChangeForm(FlaskForm):
    """改价: the discount and shipping fee; the new unit prices come as fields `line-<id>`, one per line."""

    discount = StringField(_l("Discount"), validators=[Optional(), Length(max=20)])
    shipping_fee = StringField(_l("Shipping fee"), validators=[Optional(), Length(max=20)])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class RefundForm(FlaskForm):
    """A refund of part or all of what was paid (shared.services.refunds checks the amount)."""

    amount = StringField(_l("Refund amount"), validators=[DataRequired(), Length(max=20)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=200)])
    goods_returned = BooleanField(_l("The goods came back"))


class PaymentForm(FlaskForm):
    confirm = BooleanField(_l("The payment has arrived"), validators=[DataRequired()])


class StockAdjustForm(FlaskForm):
    sku = StringField(_l("SKU"), validators=[DataRequired(), Length(max=64)])
    warehouse = SelectField(_l("Warehouse"), validators=[DataRequired()])
    delta = IntegerField(_l("Change (+ receipt, - removal)"), validators=[InputRequired()])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class StockHoldForm(FlaskForm):
    sku = StringField(_l("SKU"), validators=[DataRequired(), Length(max=64)])
    warehouse = SelectField(_l("Warehouse"), validators=[DataRequired()])
    held = IntegerField(_l("Held for promotions"), validators=[InputRequired(), NumberRange(min=0)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class SkuForm(FlaskForm):
    sku = StringField(_l("SKU code"), validators=[DataRequired(), Length(max=64)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    safety_stock = IntegerField(_l("Safety stock"), default=0, validators=[InputRequired(), NumberRange(min=0)])
    batch_tracked = BooleanField(_l("Batch tracked"))


class WarehouseForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=32)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    province = StringField(_l("Province"), validators=[DataRequired(), Length(max=40)])
    city = StringField(_l("City"), validators=[DataRequired(), Length(max=40)])


def role_choices():
    """The roles as they are now (roles are data), in the viewer's language."""
    from shared.security import role_table

    return [(code, labels.role_name(code)) for code in role_table.current().roles]


class UserCreateForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    display_name = StringField(_l("Display name"), validators=[Optional(), Length(max=120)])
    role = SelectField(_l("Role"), choices=role_choices, validators=[DataRequired()])
    locale = SelectField(_l("Language"), choices=list(LANGUAGES.items()))
    password = PasswordField(_l("Initial password"), validators=[DataRequired(), Length(max=256)])  # the policy is the service's


class UserEditForm(FlaskForm):
    role = SelectField(_l("Role"), choices=role_choices, validators=[DataRequired()])
    team = SelectField(_l("Team"), choices=[], validate_choice=False)
    active = BooleanField(_l("Active"))
    locale = SelectField(_l("Language"), choices=list(LANGUAGES.items()))


class RoleCreateForm(FlaskForm):
    code = StringField(_l("Role code"), validators=[DataRequired(), Length(max=32)])
    name_zh = StringField(_l("Name (Chinese)"), validators=[DataRequired(), Length(max=60)])
    name_en = StringField(_l("Name (English)"), validators=[DataRequired(), Length(max=60)])
    like = SelectField(_l("Start from the permissions of"), choices=[], validate_choice=False)
    second_factor = BooleanField(_l("Second factor at sign-in"))


class RolePermissionsForm(FlaskForm):
    """One role's row of the matrix: the granted cells arrive as `grant` values "resource:action"."""
    name_zh = StringField(_l("Name (Chinese)"), validators=[DataRequired(), Length(max=60)])
    name_en = StringField(_l("Name (English)"), validators=[DataRequired(), Length(max=60)])
    second_factor = BooleanField(_l("Second factor at sign-in"))


class TeamForm(FlaskForm):
    code = StringField(_l("Team code"), validators=[Optional(), Length(max=32)])
    name_zh = StringField(_l("Name (Chinese)"), validators=[DataRequired(), Length(max=60)])
    name_en = StringField(_l("Name (English)"), validators=[DataRequired(), Length(max=60)])
    lead = SelectField(_l("Team lead"), choices=[], validate_choice=False)
    parent = SelectField(_l("Reports to team"), choices=[], validate_choice=False)


class RetentionPeriodForm(FlaskForm):
    days = StringField(_l("Days"), validators=[DataRequired(), Length(max=9)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class LegalHoldForm(FlaskForm):
    entity_type = SelectField(_l("Held"), choices=[("order", _l("Order (order number)")),
                                                   ("customer", _l("Customer (customer id)"))])
    ref = StringField(_l("Order number or customer id"), validators=[DataRequired(), Length(max=20)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class ReleaseHoldForm(FlaskForm):
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class ConfirmForm(FlaskForm):
    """An empty form: only its CSRF token matters (unlock, revoke tokens)."""


class CustomerTierForm(FlaskForm):
    """Move a customer to a tier (the tiers are data: shared.models.CustomerTier)."""
    tier = SelectField(_l("Tier"), choices=[], validate_choice=False, validators=[DataRequired(), Length(max=16)])


class NoteForm(FlaskForm):
    """A staff note on an order or a customer (shared/services/order_notes.py checks it again)."""

    body = TextAreaField(_l("Note"), validators=[DataRequired(), Length(max=1000)])


class TagForm(FlaskForm):
    tag = SelectField(_l("Tag"), choices=[(code, name) for code, name in labels.ORDER_TAG.items()])


class AlarmAssignForm(FlaskForm):
    assignee = StringField(_l("Assign to (username)"), validators=[DataRequired(), Length(max=80)])


class AlarmMuteForm(FlaskForm):
    kind = SelectField(_l("Kind"), choices=[])
    subject = StringField(_l("Only for (e.g. sku:TEA or order:<order no.>)"), validators=[Optional(), Length(max=80)])
    hours = IntegerField(_l("Hours"), default=4, validators=[InputRequired(), NumberRange(min=1, max=168)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=300)])


# --- channels and webhooks ---------------------------------------------------------------------------------

class ConnectionForm(FlaskForm):
    """A channel's API connection. Secrets are write-only: an empty field keeps the stored value."""

    base_url = StringField(_l("API address"), validators=[Optional(), Length(max=300)])
    app_key = StringField(_l("App key"), validators=[Optional(), Length(max=120)])
    app_secret = PasswordField(_l("App secret"), validators=[Optional(), Length(max=500)])
    access_token = PasswordField(_l("Access token"), validators=[Optional(), Length(max=500)])
    webhook_secret = PasswordField(_l("Webhook secret"), validators=[Optional(), Length(max=500)])
    poll_minutes = IntegerField(_l("Poll every (minutes)"), default=5,
                                validators=[InputRequired(), NumberRange(min=1, max=1440)])
    polling_enabled = BooleanField(_l("Polling on"))


def lifecycle_choices():
    return [(str(code), label(STATUS, str(code))) for code in LIFECYCLE_TARGETS]


def payment_choices():
    return [(code, str(label(PAYMENT, code)) if code else str(_l("From the paid time")))
            for code in PAYMENT_CHOICES]


def refund_choices():
    return [(code, str(label(REFUND, code)) if code else str(_l("Automatic")))
            for code in REFUND_CHOICES]


class StatusMappingForm(FlaskForm):
    """One row of a channel's status mapping: a platform status and what it means here."""

    platform_status = StringField(_l("Platform status"), validators=[DataRequired(), Length(max=64)])
    lifecycle = SelectField(_l("Order status"), choices=lifecycle_choices, validators=[DataRequired()])
    payment_status = SelectField(_l("Payment"), choices=payment_choices, default="")
    refund_status = SelectField(_l("Refund"), choices=refund_choices, default="")
    note = StringField(_l("Note"), validators=[Optional(), Length(max=200)])


MAPPING_KEY_CHOICES = [("code", _l("Merchant code")), ("variant", _l("Platform variant id")),
                       ("product", _l("Platform product id"))]


class SkuMappingForm(FlaskForm):
    """A mapping keyed by the merchant's code on the platform, or by the platform's variant or product id."""

    key_kind = SelectField(_l("Key"), choices=MAPPING_KEY_CHOICES, default="code")
    channel_sku = StringField(_l("Channel SKU"), validators=[DataRequired(), Length(max=64)])
    sku = StringField(_l("Internal SKU"), validators=[DataRequired(), Length(max=64)])


class SkuUnmapForm(FlaskForm):
    key_kind = SelectField(_l("Key"), choices=MAPPING_KEY_CHOICES, default="code")
    channel_sku = StringField(_l("Channel SKU"), validators=[DataRequired(), Length(max=64)])


class ReplayFailedForm(FlaskForm):
    """Replay every failed inbox item, of one channel when a channel code is given."""

    channel = StringField(_l("Channel"), validators=[Optional(), Length(max=2)])


class ImportForm(FlaskForm):
    channel = SelectField(_l("Channel"), validators=[DataRequired()])
    file = FileField(_l("File (.csv or .xlsx)"), validators=[
        FileRequired(_l("Choose a file to upload.")),
        FileAllowed(["csv", "xlsx"], _l("Upload a .csv or .xlsx file."))])


class WebhookSubscriptionForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=80)])
    url = StringField(_l("URL"), validators=[DataRequired(), Length(max=500)])
    secret = PasswordField(_l("Signing secret"), validators=[DataRequired(), Length(max=200)])
    events = StringField(_l("Events"), default="order.*", validators=[Optional(), Length(max=200)])


class SubscriptionStateForm(FlaskForm):
    state = SelectField(choices=[("on", "on"), ("off", "off")], validators=[DataRequired()])


# --- fulfilment --------------------------------------------------------------------------------------------

class PlanWavesForm(FlaskForm):
    """Plan waves for one warehouse: its allocated shipments, grouped by carrier for the next cut-off."""

    warehouse = StringField(_l("Warehouse"), validators=[DataRequired(), Length(max=32)])


class CarrierScoreRulesForm(FlaskForm):
    """The carrier scoring rules; the service checks the numbers (and that the weights add up to 1)."""

    on_time_weight = StringField(_l("On-time weight"), validators=[DataRequired(), Length(max=12)])
    stall_weight = StringField(_l("Stall weight"), validators=[DataRequired(), Length(max=12)])
    photo_weight = StringField(_l("Signed-photo weight"), validators=[DataRequired(), Length(max=12)])
    response_weight = StringField(_l("Complaint response weight"), validators=[DataRequired(), Length(max=12)])
    min_route_parcels = StringField(_l("Minimum parcels for a route score"),
                                    validators=[DataRequired(), Length(max=12)])
    deweight_below = StringField(_l("De-weight under score"), validators=[DataRequired(), Length(max=12)])
    load_threshold = StringField(_l("Skip at carrier load"), validators=[DataRequired(), Length(max=12)])
    response_target_hours = StringField(_l("Complaint answered within (hours)"),
                                        validators=[DataRequired(), Length(max=12)])


# --- stock operations --------------------------------------------------------------------------------------
# Warehouse choices are filled in by the view (the active warehouses); the services check everything again.

class ReceiptForm(FlaskForm):
    """Units arriving into a bin, with the batch number and dates of batch-tracked SKUs."""

    sku = StringField(_l("SKU"), validators=[DataRequired(), Length(max=64)])
    warehouse = SelectField(_l("Warehouse"), validators=[DataRequired()])
    bin = StringField(_l("Bin"), validators=[DataRequired(), Length(max=32)])
    quantity = IntegerField(_l("Quantity"), validators=[InputRequired(), NumberRange(min=1)])
    lot_no = StringField(_l("Batch number"), validators=[Optional(), Length(max=40)])
    produced_on = DateField(_l("Production date"), validators=[Optional()])
    expires_on = DateField(_l("Expiry date"), validators=[Optional()])


class TransferForm(FlaskForm):
    sku = StringField(_l("SKU"), validators=[DataRequired(), Length(max=64)])
    from_warehouse = SelectField(_l("From warehouse"), validators=[DataRequired()])
    to_warehouse = SelectField(_l("To warehouse"), validators=[DataRequired()])
    quantity = IntegerField(_l("Quantity"), validators=[InputRequired(), NumberRange(min=1)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class ReturnForm(FlaskForm):
    """A returned item after inspection: back on the shelf when it passed, written off (with a note) when not."""

    order_no = StringField(_l("Order number"), validators=[DataRequired(), Length(max=32)])
    sku = StringField(_l("SKU"), validators=[DataRequired(), Length(max=64)])
    warehouse = SelectField(_l("Warehouse"), validators=[DataRequired()])
    quantity = IntegerField(_l("Quantity"), validators=[InputRequired(), NumberRange(min=1)])
    passed_inspection = RadioField(_l("Inspection"), choices=[("yes", _l("Passed: back on the shelf")),
                                                              ("no", _l("Failed: written off"))],
                                   validators=[InputRequired()])
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=500)])


class StartStockTakeForm(FlaskForm):
    warehouse = SelectField(_l("Warehouse"), validators=[DataRequired()])


class CountForm(FlaskForm):
    """One counted figure of a stock-take (a SKU not on the sheet is added as found)."""

    sku = StringField(_l("SKU"), validators=[DataRequired(), Length(max=64)])
    counted = IntegerField(_l("Counted"), validators=[InputRequired(), NumberRange(min=0)])


class StockTakeDecisionForm(FlaskForm):
    """A manager's approval or rejection of a submitted count; a rejection says why."""

    note = TextAreaField(_l("Note (required to reject)"), validators=[Optional(), Length(max=500)])


# --- first day: channels, warehouses, bins, mapping imports ---------------------------------------------------

def channel_kind_choices():
    from shared.models.channel import CHANNEL_KINDS

    from shared.labels import CHANNEL_KIND

    return [(kind, label(CHANNEL_KIND, kind)) for kind in CHANNEL_KINDS]


class ChannelForm(FlaskForm):
    """A new sales channel; its connection and mappings are set on its settings page afterwards."""

    code = StringField(_l("Code (two letters)"), validators=[DataRequired(), Length(min=2, max=2)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=80)])
    kind = SelectField(_l("Platform"), choices=channel_kind_choices, validators=[DataRequired()])
    timezone = StringField(_l("Time zone"), default="Asia/Shanghai", validators=[DataRequired(), Length(max=40)])
    currency = StringField(_l("Currency"), default="CNY", validators=[DataRequired(), Length(min=3, max=3)])


class ChannelDetailsForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=80)])
    timezone = StringField(_l("Time zone"), validators=[DataRequired(), Length(max=40)])
    currency = StringField(_l("Currency"), validators=[DataRequired(), Length(min=3, max=3)])
    active = BooleanField(_l("In use"))


class MappingImportForm(FlaskForm):
    file = FileField(_l("File (.csv or .xlsx)"), validators=[
        FileRequired(_l("Choose a file to upload.")),
        FileAllowed(["csv", "xlsx"], _l("Upload a .csv or .xlsx file."))])


class WarehouseEditForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    province = StringField(_l("Province"), validators=[DataRequired(), Length(max=40)])
    city = StringField(_l("City"), validators=[DataRequired(), Length(max=40)])
    carriers = StringField(_l("Carriers (first choice, then backups)"), validators=[DataRequired(), Length(max=100)])
    cold_chain = BooleanField(_l("Keeps and ships cold chain goods"))
    active = BooleanField(_l("In use"))


class BinForm(FlaskForm):
    code = StringField(_l("Bin code"), validators=[DataRequired(), Length(max=32)])
    walk_order = IntegerField(_l("Walk order"), default=0, validators=[InputRequired(), NumberRange(min=0)])
    capacity = IntegerField(_l("Capacity (units)"), default=10_000, validators=[InputRequired(), NumberRange(min=1)])


class BinEditForm(FlaskForm):
    """A bin's place on the pick walk and its capacity; its code is printed on the shelf and stays."""

    walk_order = IntegerField(_l("Walk order"), validators=[InputRequired(), NumberRange(min=0)])
    capacity = IntegerField(_l("Capacity (units)"), validators=[InputRequired(), NumberRange(min=1)])


class DeviceForm(FlaskForm):
    name = StringField(_l("Handheld name"), validators=[DataRequired(), Length(max=60)])


# --- governed exports --------------------------------------------------------------------------------------

class ExportForm(FlaskForm):
    """Start an export. Kind and format are checked by the service (one place for what exists); the filter
    fields are the union of every kind's, and the service refuses one the chosen kind does not take."""

    kind = SelectField(_l("What"), validate_choice=False)
    format = SelectField(_l("Format"), choices=[("xlsx", "Excel (.xlsx)"), ("csv", "CSV"), ("pdf", "PDF"),
                                                     ("zip", "ZIP")], validate_choice=False)
    status = StringField(_l("Order status"), validators=[Optional(), Length(max=20)])
    channel = StringField(_l("Channel code"), validators=[Optional(), Length(max=8)])
    placed_from = StringField(_l("Placed from"), validators=[Optional(), Length(max=10)])
    placed_to = StringField(_l("Placed to"), validators=[Optional(), Length(max=10)])
    date_from = StringField(_l("From"), validators=[Optional(), Length(max=10)])
    date_to = StringField(_l("To"), validators=[Optional(), Length(max=10)])
    action = StringField(_l("Action starts with"), validators=[Optional(), Length(max=64)])
    entity = StringField(_l("Entity"), validators=[Optional(), Length(max=64)])
    actor = StringField(_l("Actor"), validators=[Optional(), Length(max=120)])
    report_id = StringField(_l("Reconciliation report"), validators=[Optional(), Length(max=12)])
    difference = StringField(_l("Difference kind"), validators=[Optional(), Length(max=20)])
    order_no = StringField(_l("Order number"), validators=[Optional(), Length(max=64)])

    FILTERS = ("status", "channel", "placed_from", "placed_to", "date_from", "date_to", "action", "entity", "actor",
               "report_id", "difference", "order_no")

    def filters(self) -> dict:
        return {name: self[name].data.strip() for name in self.FILTERS if (self[name].data or "").strip()}


class TraceForm(FlaskForm):
    """An auditor uploads a file found somewhere it should not be: which export, and whose, is it?"""

    file = FileField(_l("File (.csv, .xlsx or .pdf)"), validators=[FileRequired(_l("Choose a file to upload."))])


# --- the exception center ----------------------------------------------------------------------------------

class ExceptionTransitionForm(FlaskForm):
    to = StringField(validators=[DataRequired(), Length(max=20)])
    canned = SelectField(_l("Canned reply"), choices=[], validate_choice=False)
    comment = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=1000)])


class StockOfferForm(FlaskForm):
    """Accept one out-of-stock offer (its id), or look at the stock again (no offer)."""
    offer = StringField(_l("Offer"), validators=[Optional(), Length(max=12)])


class ExceptionAssignForm(FlaskForm):
    assignee = SelectField(_l("Assign to"), choices=[], validate_choice=False, validators=[DataRequired()])


class ExceptionRouteForm(FlaskForm):
    key = SelectField(_l("Category or kind"), choices=[], validate_choice=False, validators=[DataRequired()])
    team = SelectField(_l("Team"), choices=[], validate_choice=False, validators=[DataRequired()])


class ExceptionSlaForm(FlaskForm):
    category = SelectField(_l("Category"), choices=[], validate_choice=False, validators=[DataRequired()])
    first_response_minutes = StringField(_l("First response (minutes)"), validators=[DataRequired(), Length(max=12)])
    resolve_minutes = StringField(_l("Resolve within (minutes)"), validators=[DataRequired(), Length(max=12)])
    clock = SelectField(_l("Clock"), choices=[], validate_choice=False, validators=[DataRequired()])


class CannedReplyForm(FlaskForm):
    category = SelectField(_l("Category"), choices=[], validate_choice=False, validators=[DataRequired()])
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=40)])
    text_zh = TextAreaField(_l("Text (Chinese)"), validators=[DataRequired(), Length(max=1000)])
    text_en = TextAreaField(_l("Text (English)"), validators=[DataRequired(), Length(max=1000)])


# --- approvals ---------------------------------------------------------------------------------------------

class DecisionForm(FlaskForm):
    decision = RadioField(_l("Decision"), choices=[("approve", _l("Approve")), ("reject", _l("Reject"))],
                          validators=[DataRequired()])
    comment = TextAreaField(_l("Comment (needed to reject)"), validators=[Optional(), Length(max=1000)])


class BulkDecisionForm(DecisionForm):
    """The inbox's bulk decision: the chosen request ids arrive as the checkboxes `ids`."""


class DelegationForm(FlaskForm):
    delegate = SelectField(_l("Delegate"), choices=[], validate_choice=False, validators=[DataRequired()])
    starts_on = DateField(_l("From"), validators=[DataRequired()])
    ends_on = DateField(_l("Until"), validators=[DataRequired()])


class RuleForm(FlaskForm):
    code = StringField(_l("Rule code"), validators=[Optional(), Length(max=40)])
    operation = SelectField(_l("Operation"), choices=[], validate_choice=False, validators=[DataRequired()])
    name_zh = StringField(_l("Name (Chinese)"), validators=[DataRequired(), Length(max=80)])
    name_en = StringField(_l("Name (English)"), validators=[DataRequired(), Length(max=80)])
    priority = IntegerField(_l("Priority (the highest matching rule applies)"), default=10,
                            validators=[InputRequired(), NumberRange(0, 1000)])
    active = BooleanField(_l("Active"), default=True)
    stall_minutes = IntegerField(_l("Idle minutes (business time) before escalation"), default=120,
                                 validators=[InputRequired(), NumberRange(15, 7 * 24 * 60)])
    min_amount = StringField(_l("Amount at least"), validators=[Optional(), Length(max=20)])
    currency = StringField(_l("Currency"), validators=[Optional(), Length(max=3)])
    custom_made = BooleanField(_l("Contains a custom-made SKU"))
    channels = StringField(_l("Channels (codes, comma-separated)"), validators=[Optional(), Length(max=200)])
    warehouses = StringField(_l("Warehouses (codes, comma-separated)"), validators=[Optional(), Length(max=200)])
    variance_units = IntegerField(_l("Variance over (units)"), validators=[Optional(), NumberRange(0, 10_000_000)])
    variance_value = StringField(_l("Variance over (value)"), validators=[Optional(), Length(max=20)])
    steps = TextAreaField(_l("Steps, one a line: stage kind target quorum (e.g. 1 role cs_lead 1)"),
                          validators=[DataRequired(), Length(max=2000)])


class KpiTargetForm(FlaskForm):
    target = StringField(_l("Target"), validators=[DataRequired(), Length(max=12)])


TAX_RATE_CHOICES = [("13", "13%"), ("9", "9%"), ("6", "6%"), ("3", "3%"), ("1", "1%"), ("0", "0%"),
                    ("exempt", _l("Tax exempt (免税)")), ("untaxed", _l("Not taxable (不征税)"))]


class SkuTaxForm(FlaskForm):
    """One SKU's tax data for invoices; the rules are shared/services/sku_tax.py's."""
    sku = StringField(_l("SKU code"), validators=[DataRequired(), Length(max=64)])
    tax_code = StringField(_l("Tax classification code (19 digits)"), validators=[DataRequired(), Length(max=40)])
    tax_short_name = StringField(_l("Tax category short name"), validators=[DataRequired(), Length(max=40)])
    rate = SelectField(_l("Rate"), choices=TAX_RATE_CHOICES, default="13")
    tax_unit = StringField(_l("Unit"), validators=[DataRequired(), Length(max=16)])

    def values(self) -> dict:
        free = self.rate.data in ("exempt", "untaxed")
        return {"tax_code": self.tax_code.data, "tax_short_name": self.tax_short_name.data,
                "tax_rate": None if free else self.rate.data, "tax_free": self.rate.data if free else None,
                "tax_unit": self.tax_unit.data}


class SkuTaxImportForm(FlaskForm):
    file = FileField(_l("CSV or XLSX file"), validators=[FileRequired(), FileAllowed(["csv", "xlsx"])])


class StaffInvoiceProfileForm(FlaskForm):
    """A B2B customer's invoice profile kept by staff; the rules are shared/services/invoice_profiles.py's."""
    kind = SelectField(_l("Type"), choices=[(code, text) for code, text in labels.INVOICE_PROFILE_KIND.items()])
    name = StringField(_l("Name on the invoice"), validators=[Length(max=200)])
    tax_id = StringField(_l("Tax id (unified social credit code)"), validators=[Length(max=40)])
    address = StringField(_l("Address"), validators=[Length(max=200)])
    phone = StringField(_l("Phone"), validators=[Length(max=40)])
    bank = StringField(_l("Bank"), validators=[Length(max=200)])
    account = StringField(_l("Account number"), validators=[Length(max=60)])
    email = StringField(_l("Email for the invoice"), validators=[Length(max=254)])

    def values(self) -> dict:
        return {name: getattr(self, name).data for name in
                ("kind", "name", "tax_id", "address", "phone", "bank", "account", "email")}


class PaymentBillForm(FlaskForm):
    """Reconcile one day's provider bill: uploaded, or downloaded through the provider's signed bill API."""
    account_id = SelectField(_l("Payment account"), coerce=int, validate_choice=False)
    bill_date = DateField(_l("Bill date"), validators=[DataRequired()])
    file = FileField(_l("Bill file (.csv); empty: download it"))


class PaymentAccountForm(FlaskForm):
    """A direct channel's account at WeChat Pay or Alipay: what its notifications are verified and decrypted with,
    and what its requests to the provider's API (refunds, bill downloads) are signed with and sent to."""
    channel_code = StringField(_l("Channel code"), validators=[DataRequired(), Length(min=2, max=2)])
    provider = SelectField(_l("Provider"), choices=[("wechatpay", _l("WeChat Pay")), ("alipay", _l("Alipay"))])
    merchant_id = StringField(_l("Merchant id (mchid)"), validators=[Optional(), Length(max=32)])
    app_id = StringField(_l("App id"), validators=[Optional(), Length(max=32)])
    api_v3_key = PasswordField(_l("API v3 key (WeChat Pay, 32 characters)"), validators=[Optional(), Length(max=64)])
    provider_public_key = TextAreaField(_l("Platform certificate or public key (PEM)"),
                                        validators=[DataRequired(), Length(max=10000)])
    platform_serial = StringField(_l("Platform certificate serial (WeChat Pay)"),
                                  validators=[Optional(), Length(max=64)])
    api_url = StringField(_l("Provider API address (empty: the provider's own)"),
                          validators=[Optional(), Length(max=300)])
    merchant_private_key = TextAreaField(_l("Merchant API private key (PEM; empty: keep the one stored)"),
                                         validators=[Optional(), Length(max=10000)])
    merchant_serial = StringField(_l("Merchant API certificate serial (WeChat Pay)"),
                                  validators=[Optional(), Length(max=64)])


# --- finance: invoices -------------------------------------------------------------------------------------

INVOICE_KINDS = [("normal", _l("Normal VAT invoice (普票)")), ("special", _l("Special VAT invoice (专票)"))]


class InvoiceRequestForm(FlaskForm):
    """Ask for an order's invoice: one of its buyer's profiles (the service checks whose it is) and the kind."""

    profile_id = SelectField(_l("Invoice profile"), coerce=int, choices=[], validate_choice=False,
                             validators=[InputRequired()])
    kind = SelectField(_l("Kind"), choices=INVOICE_KINDS, validators=[DataRequired()])


class InvoiceResubmitForm(FlaskForm):
    """Resubmit a failed request, with another of the buyer's profiles or (empty) the one it was made from."""

    profile_id = SelectField(_l("Invoice profile"), coerce=int, choices=[], validate_choice=False,
                             validators=[Optional()])


class RedLetterForm(FlaskForm):
    """红字 / red-letter reversal of one issued invoice: a reason, all that remains or a gross amount of it."""
    part_id = IntegerField(validators=[InputRequired()])
    reason = SelectField(_l("Reason"), choices=list(labels.RED_REASON.items()), validators=[DataRequired()])
    scope = RadioField(_l("Reverse"), choices=[("full", _l("All that remains")), ("partial", _l("An amount"))],
                       default="full", validators=[DataRequired()])
    amount = StringField(_l("Amount (tax included)"), validators=[Optional(), Length(max=20)])


class InvoiceCancelForm(FlaskForm):
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=300)])


class SupplierForm(FlaskForm):
    """A supplier (shared/services/purchasing.py checks the values); the lead time may stay empty until known."""
    code = StringField(_l("Supplier code"), validators=[DataRequired(), Length(max=32)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    email = StringField(_l("Email for purchase suggestions"), validators=[Optional(), Length(max=200)])
    locale = SelectField(_l("Language of its mail"), choices=[("zh_CN", "中文"), ("en", "English")])
    lead_time_days = IntegerField(_l("Lead time (days)"), validators=[Optional()])
    safety_days = IntegerField(_l("Safety stock (days of sales)"), default=7, validators=[InputRequired()])
    active = BooleanField(_l("Active"), default=True)


class SupplierSkuForm(FlaskForm):
    """A SKU bought from the supplier and its terms; empty fields fall back to the supplier's defaults."""
    sku = StringField(_l("SKU"), validators=[DataRequired(), Length(max=64)])
    supplier_code = StringField(_l("Supplier's article"), validators=[Optional(), Length(max=64)])
    lead_time_days = IntegerField(_l("Own lead time (days)"), validators=[Optional()])
    safety_units = IntegerField(_l("Safety stock (units, instead of days)"), validators=[Optional()])
    moq = IntegerField(_l("MOQ"), default=1, validators=[Optional()])
    pack_size = IntegerField(_l("Pack size"), default=1, validators=[Optional()])
