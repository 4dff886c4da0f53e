"""Flask-WTF forms: the reader's reply form, the moderator's login and decision forms."""
import functools
import unicodedata
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from flask_wtf import FlaskForm
from wtforms import (BooleanField, EmailField, HiddenField, IntegerField, PasswordField, RadioField,
                     SelectField, StringField, TextAreaField, URLField)
from wtforms.fields.core import UnboundField
from wtforms.validators import (DataRequired, InputRequired, Length, NumberRange, Optional, StopValidation,
                                ValidationError)

KEEP_CONTROLS = {"\n", "\t"}


def clean_text(value: str | None) -> str | None:
    """NFC, without NUL and other control characters or lone surrogates (which no database stores)."""
    if value is None:
        return None
    value = unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(ch for ch in value if ch in KEEP_CONTROLS
                   or unicodedata.category(ch) not in ("Cc", "Cs"))


def clean_line(value: str | None) -> str | None:
    """One line of text: also without format characters (bidi overrides, zero-width), trimmed."""
    value = clean_text(value)
    if value is None:
        return None
    return " ".join("".join(ch for ch in value if unicodedata.category(ch) != "Cf").split())


def email_syntax(form, field) -> None:
    if not field.data:
        return
    try:
        field.data = validate_email(field.data, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError:
        raise ValidationError("Please enter a valid email address, like name@example.com.")


def web_address(form, field) -> None:
    if not field.data:
        return
    parts = urlsplit(field.data)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or " " in field.data:
        raise ValidationError("Please enter a web address starting with http:// or https://.")


class CommentForm(FlaskForm):
    """The fields a reader fills in; the same validation serves the widget and the API."""

    body = TextAreaField("Comment", filters=[clean_text], validators=[
        DataRequired("Please write your comment."),
        Length(max=10_000, message="Your comment is too long: at most 10,000 characters.")])
    name = StringField("Name", filters=[clean_line], validators=[
        DataRequired("Please enter your name."),
        Length(max=100, message="Your name can be at most 100 characters.")])
    email = EmailField("Email", filters=[clean_line], validators=[
        DataRequired("Please enter your email address."),
        Length(max=254, message="Your email address can be at most 254 characters."), email_syntax])
    website = URLField("Website", filters=[clean_line], validators=[
        Optional(), Length(max=200, message="Your website address can be at most 200 characters."),
        web_address])
    parent_id = IntegerField(validators=[Optional(), NumberRange(
        1, 2**63 - 1, message="You can only reply to a published comment on this article.")])
    notify = BooleanField("Notify me when my comment is approved or replied to")


class WidgetForm(CommentForm):
    """The reply form inside the widget: protected by its own signed token, not a session."""

    class Meta:
        csrf = False

    token = HiddenField()
    url = HiddenField()
    title = HiddenField()
    author_token = HiddenField()
    # The honeypot: hidden from people and screen readers, so only a program fills it in.
    topic = StringField("Leave this empty")


class ApiCommentForm(CommentForm):
    """The JSON API's comment: CORS and the origin check protect it, not a form token."""

    class Meta:
        csrf = False

    url = StringField(validators=[InputRequired("The article's address (url) is required."),
                                  Length(max=2000, message="The article's address is too long.")])
    title = StringField(filters=[clean_line], validators=[Optional(), Length(max=300)])
    author_token = StringField(validators=[Optional(), Length(max=1000)])


class _FieldValue:
    """What WTForms' filters and validators use of a bound field, for check_fields."""

    def __init__(self, raw: str | None):
        self.raw_data = [] if raw is None else [raw]
        self.data = raw
        self.errors: list[str] = []

    def gettext(self, text: str) -> str:
        return text

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural


def check_fields(form_class: type, values: dict[str, str]) -> tuple[dict, dict[str, list[str]]]:
    """A form's own text fields, filters and validators applied to values (a JSON object's),
    as form.validate() applies them to the fields of a post: (the filtered data, the errors
    by field). For the API, which would otherwise build a form, a fifth of a post's cost,
    to read a dict it already has; the form stays the one definition of every field."""
    data, errors = {}, {}
    for name, field in _text_fields(form_class):
        value = _FieldValue(values.get(name))
        for apply in field.kwargs.get("filters", ()):
            value.data = apply(value.data)
        for validator in field.kwargs.get("validators", ()):
            try:
                validator(None, value)
            except StopValidation as stop:
                if stop.args and stop.args[0]:
                    value.errors.append(stop.args[0])
                break
            except ValidationError as error:
                value.errors.append(error.args[0])
        data[name] = value.data
        if value.errors:
            errors[name] = value.errors
    return data, errors


@functools.cache
def _text_fields(form_class: type) -> list[tuple[str, UnboundField]]:
    """The form's string fields, in the form's order (as FormMeta orders them)."""
    fields = [(name, field) for name in dir(form_class) if not name.startswith("_")
              and isinstance(field := getattr(form_class, name), UnboundField)
              and issubclass(field.field_class, StringField)]
    for name, field in fields:  # what check_fields would not see
        if len(field.args) > 1 or hasattr(form_class, f"validate_{name}"):
            raise TypeError(f"{form_class.__name__}.{name}: check_fields reads validators and filters given by keyword only")
    return sorted(fields, key=lambda item: (item[1].creation_counter, item[0]))


class LoginForm(FlaskForm):
    email = EmailField("Email", filters=[clean_line], validators=[DataRequired("Please enter your email.")])
    password = PasswordField("Password", validators=[DataRequired("Please enter your password.")])


REJECT_REASONS = ("Spam", "Abuse or harassment", "Off-topic", "Personal information", "Duplicate")
REPORT_REASONS = {"spam": "Spam", "abuse": "Abuse", "off-topic": "Off-topic", "other": "Other"}
BAN_PERIODS = {"1": "1 day", "7": "7 days", "30": "30 days", "365": "1 year"}


class DecisionForm(FlaskForm):
    """Approve / reject / flag: the action is in the URL, the version is what the moderator saw;
    a reject may carry a reason from the short list, a reject or flag a note."""

    version = IntegerField(validators=[InputRequired()])
    reason = SelectField("Reason", choices=[("", "No reason given"), *((r, r) for r in REJECT_REASONS)],
                         validators=[Optional()])
    note = StringField("Note", filters=[clean_line], validators=[Optional(), Length(max=500)])


class EditForm(FlaskForm):
    """A moderator's correction of a comment's text (a redacted phone number, a fixed link)."""

    version = IntegerField(validators=[InputRequired()])
    body = TextAreaField("Comment text", filters=[clean_text], validators=[
        DataRequired("The comment cannot be empty; reject it instead."), Length(max=10_000)])
    note = StringField("Why (kept in the audit log)", filters=[clean_line], validators=[Optional(), Length(max=500)])


class BanForm(FlaskForm):
    """Ban a comment's author by email, by IP address, or by an IP range, for a period."""

    kind = SelectField("Ban by", choices=[("email", "Email address"), ("ip", "IP address"), ("range", "IP range")])
    cidr = IntegerField("Range prefix length (for an IP range)", default=24, validators=[Optional()])
    days = SelectField("For", choices=list(BAN_PERIODS.items()), default="7")
    note = StringField("Note", filters=[clean_line], validators=[Optional(), Length(max=500)])


class BulkForm(FlaskForm):
    """Approve / reject / flag the selected comments, or every comment the filter matches."""

    everything = BooleanField("Every comment matching the filter")
    reason = SelectField("Reason", choices=[("", "No reason given"), *((r, r) for r in REJECT_REASONS)],
                         validators=[Optional()])


class ReportForm(FlaskForm):
    """A reader's report of a published comment; sent from the widget, so protected by its own
    signed single-use token (as the reply form is) rather than a session's."""

    class Meta:
        csrf = False

    reason = RadioField("Why are you reporting this comment?", choices=list(REPORT_REASONS.items()),
                        validators=[InputRequired("Please choose a reason.")])
    text = TextAreaField("Anything else (optional)", filters=[clean_text], validators=[Optional(), Length(max=500)])
    token = HiddenField()
    author_token = HiddenField()
