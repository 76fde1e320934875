"""The shopper's account forms: sign-up, sign-in, passwords and addresses (checkout reuses the address form)."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp

from storefront.accounts import services as accounts

COUNTRIES = [
    ("US", "United States"),
    ("CA", "Canada"),
    ("GB", "United Kingdom"),
    ("IE", "Ireland"),
    ("AU", "Australia"),
    ("NZ", "New Zealand"),
    ("DE", "Germany"),
    ("FR", "France"),
    ("NL", "Netherlands"),
    ("ES", "Spain"),
    ("IT", "Italy"),
]


def _email_field(label="E-mail"):
    return EmailField(
        label, validators=[DataRequired(), Length(max=254)], render_kw={"autocomplete": "email"}
    )


def _new_password_fields():
    password = PasswordField(
        "New password",
        validators=[DataRequired(), Length(max=accounts.MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "new-password", "minlength": accounts.MIN_PASSWORD_LENGTH},
    )
    confirm = PasswordField(
        "Repeat the password",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )
    return password, confirm


class RegisterForm(FlaskForm):
    email = _email_field()
    password, confirm = _new_password_fields()


class LoginForm(FlaskForm):
    email = _email_field()
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=accounts.MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )
    remember = BooleanField("Keep me signed in on this device")
    next = HiddenField()


class ResetRequestForm(FlaskForm):
    email = _email_field()


class NewPasswordForm(FlaskForm):
    password, confirm = _new_password_fields()


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password",
        validators=[DataRequired(), Length(max=accounts.MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )
    password, confirm = _new_password_fields()


class AddressForm(FlaskForm):
    full_name = StringField(
        "Full name", validators=[DataRequired(), Length(max=120)], render_kw={"autocomplete": "name"}
    )
    line1 = StringField(
        "Address", validators=[DataRequired(), Length(max=120)], render_kw={"autocomplete": "address-line1"}
    )
    line2 = StringField(
        "Apartment, suite, etc.",
        validators=[Optional(), Length(max=120)],
        render_kw={"autocomplete": "address-line2"},
    )
    city = StringField(
        "City", validators=[DataRequired(), Length(max=80)], render_kw={"autocomplete": "address-level2"}
    )
    region = StringField(
        "State / region",
        validators=[Optional(), Length(max=80)],
        render_kw={"autocomplete": "address-level1"},
    )
    postal_code = StringField(
        "Postal code",
        validators=[
            DataRequired(),
            Length(max=16),
            Regexp(r"^[A-Za-z0-9][A-Za-z0-9 -]{1,14}$", message="Enter a valid postal code."),
        ],
        render_kw={"autocomplete": "postal-code"},
    )
    country = SelectField(
        "Country",
        choices=[SelectChoice(code, name) for code, name in COUNTRIES],
        default="US",
        render_kw={"autocomplete": "country"},
    )
    phone = StringField(
        "Phone (for the courier)",
        validators=[
            Optional(),
            Length(max=32),
            Regexp(r"^[0-9+() .-]{5,32}$", message="Enter a valid phone number."),
        ],
        render_kw={"autocomplete": "tel"},
    )


class SecondFactorForm(FlaskForm):
    code = StringField(
        "Code from your authenticator app, or a recovery code",
        validators=[DataRequired(), Length(max=32)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True},
    )
