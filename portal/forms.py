"""Portal forms (WTForms via Flask-WTF, so every form carries a CSRF token)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from shared.appcore import LANGUAGES
from shared.labels import ROLE


class SignInForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])


class TransitionForm(FlaskForm):
    to = StringField(validators=[DataRequired(), Length(max=20)])
    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=500)])


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
    return [(code, str(label)) for code, label in ROLE.items()]


class UserCreateForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    display_name = StringField(_l("Display name"), validators=[Optional(), Length(max=120)])
    role = SelectField(_l("Role"), choices=role_choices, validators=[DataRequired()])
    locale = SelectField(_l("Language"), choices=list(LANGUAGES.items()))
    password = PasswordField(_l("Initial password"), validators=[DataRequired(), Length(min=10, max=256)])


class UserEditForm(FlaskForm):
    role = SelectField(_l("Role"), choices=role_choices, validators=[DataRequired()])
    active = BooleanField(_l("Active"))
    locale = SelectField(_l("Language"), choices=list(LANGUAGES.items()))


class ConfirmForm(FlaskForm):
    """An empty form: only its CSRF token matters (unlock, revoke tokens)."""
