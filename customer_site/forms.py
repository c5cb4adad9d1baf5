"""Customer-site forms (Flask-WTF, so every form carries a CSRF token)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

from shared import order_numbers
from shared.labels import INVOICE_PROFILE_KIND
from shared.services.errors import ValidationFailed

ORDER_NO_ERRORS = {
    "malformed_order_no": _l("This is not an order number. It has two letters, 14 digits and one check character, "
                             "e.g. OS20261121000001X."),
    "order_no_check_failed": _l("This order number does not add up: please check it for a typing mistake."),
}


def _stripped(value):
    return value.strip() if isinstance(value, str) else value


class SignInForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(_l("Enter your email.")), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password.")), Length(max=256)])


class GuestLookupForm(FlaskForm):
    order_no = StringField(_l("Order number"), validators=[DataRequired(_l("Enter the order number.")),
                                                           Length(max=40)])
    phone_last4 = StringField(_l("Last four digits of the receiver's phone"), filters=[_stripped], validators=[
        DataRequired(_l("Enter the last four digits of the phone number.")),
        Regexp(r"^\d{4}$", message=_l("Enter exactly four digits."))])

    def validate_order_no(self, field):
        """Check the number's shape and check character before any look-up; keep the normalized number."""
        try:
            field.data = order_numbers.validate(field.data)
        except ValidationFailed as refused:
            raise ValidationError(str(ORDER_NO_ERRORS.get(refused.code, refused.message))) from None


class ConfirmForm(FlaskForm):
    """An empty form: only its CSRF token matters (sign-out)."""


class InvoiceProfileForm(FlaskForm):
    """An invoice profile (发票抬头). Lengths in GBK bytes, the tax id and the rules per kind are the service's
    (shared/services/invoice_profiles.py): its refusals are shown next to the field they name."""
    kind = SelectField(_l("Type"), choices=[])
    name = StringField(_l("Name on the invoice"), validators=[Length(max=200)])
    tax_id = StringField(_l("Tax id (unified social credit code)"), validators=[Length(max=40)])
    address = StringField(_l("Address"), validators=[Length(max=200)])
    phone = StringField(_l("Phone"), validators=[Length(max=40)])
    bank = StringField(_l("Bank"), validators=[Length(max=200)])
    account = StringField(_l("Account number"), validators=[Length(max=60)])
    email = StringField(_l("Email for the invoice"), validators=[Length(max=254)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind.choices = [(code, str(text)) for code, text in INVOICE_PROFILE_KIND.items()]

    def values(self) -> dict:
        return {name: getattr(self, name).data for name in
                ("kind", "name", "tax_id", "address", "phone", "bank", "account", "email")}

    def refuse(self, refusal) -> None:
        """Put a service's refusal next to its field (or at the top of the form when it names none of ours)."""
        field = getattr(self, refusal.field, None) if refusal.field else None
        if field is None or not hasattr(field, "errors") or refusal.field in ("meta", "data"):
            self.form_errors.append(refusal.message)
        else:
            field.errors = [*field.errors, refusal.message]


class InvoiceRequestForm(FlaskForm):
    """Ask for an order's invoice with one of the customer's profiles (the service checks it is theirs)."""

    profile_id = SelectField(_l("Invoice profile"), coerce=int, choices=[], validate_choice=False)
    kind = SelectField(_l("Kind"), choices=[("normal", _l("Normal VAT invoice (普票)")),
                                            ("special", _l("Special VAT invoice (专票)"))])


class StockOfferChoiceForm(FlaskForm):
    """The customer's choice among the out-of-stock offers of their order."""
    offer = StringField(_l("Offer"), validators=[DataRequired(), Length(max=12)])
