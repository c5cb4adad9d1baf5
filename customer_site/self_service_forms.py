"""Forms of the customer's self-service (Flask-WTF: each carries a CSRF token). Lengths are the services' rules
too; the services' refusals are shown next to the field they name."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from shared.services.order_threads import MAX_LENGTH

ADDRESS_FIELDS = ("receiver", "phone", "province", "city", "district", "street", "postal_code")


class RefusalMixin:
    def refuse(self, refusal) -> None:
        """Put a service's refusal next to its field (`shipping_address.city` → city), else above the form."""
        name = (refusal.field or "").rpartition(".")[2]
        field = getattr(self, name, None) if name and name not in ("meta", "data") else None
        if field is None or not hasattr(field, "errors") or isinstance(field.errors, tuple):
            self.form_errors.append(refusal.message)
        else:
            field.errors.append(refusal.message)


class CancelForm(FlaskForm):
    reason = StringField(_l("Why (optional)"), validators=[Optional(), Length(max=500)])


class AddressForm(RefusalMixin, FlaskForm):
    saved = SelectField(_l("From your address book"), choices=[], validate_choice=False)
    receiver = StringField(_l("Receiver"), validators=[Length(max=60)])
    phone = StringField(_l("Phone"), validators=[Length(max=32)])
    province = StringField(_l("Province"), validators=[Length(max=40)])
    city = StringField(_l("City"), validators=[Length(max=40)])
    district = StringField(_l("District"), validators=[Length(max=40)])
    street = StringField(_l("Street and number"), validators=[Length(max=200)])
    postal_code = StringField(_l("Postal code"), validators=[Length(max=12)])

    def values(self) -> dict:
        return {name: getattr(self, name).data for name in ADDRESS_FIELDS}


class AddressBookForm(AddressForm):
    default = BooleanField(_l("Use as my default address"))


class MessageForm(FlaskForm):
    body = TextAreaField(_l("Your message"), validators=[
        DataRequired(_l("Write a message first.")),
        Length(max=MAX_LENGTH, message=_l("A message is at most %(max)d characters."))])


class GuestCodeRequestForm(FlaskForm):
    channel = RadioField(_l("Send the code to"), choices=[], validate_choice=False)


class GuestCodeForm(FlaskForm):
    code = StringField(_l("The 6-digit code"), validators=[DataRequired(_l("Enter the code.")), Length(max=12)])


class ProfileForm(RefusalMixin, FlaskForm):
    name = StringField(_l("Name"), validators=[Length(max=60)])
    email = EmailField(_l("Email"), validators=[Length(max=254)])
    phone = StringField(_l("Phone"), validators=[Length(max=32)])


class PasswordForm(RefusalMixin, FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(_l("Enter your current "
                                                                                         "password.")),
                                                                           Length(max=256)])
    password = PasswordField(_l("New password"), validators=[DataRequired(_l("Enter a new password.")),
                                                             Length(max=256)])
