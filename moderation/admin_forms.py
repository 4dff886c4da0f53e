"""Forms of the admin pages: sites, people, a site's rules, trust marks and the rule test bench."""
from flask_wtf import FlaskForm
from wtforms import (BooleanField, EmailField, IntegerField, PasswordField, RadioField, SelectField,
                     SelectMultipleField, StringField, TextAreaField, URLField)
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from . import rules, webhooks
from .forms import clean_line, clean_text, email_syntax, web_address

MIN_PASSWORD = 10
LIST_RULES = ("blocked_words", "held_words", "blocked_emails", "blocked_email_domains", "blocked_ips",
              "allowed_origins")
ACTION_CHOICES = [("reject", "Reject it"), ("hold", "Hold it for a moderator"), ("flag", "Flag it for a second look")]
MODE_CHOICES = [
    ("pre", "Pre-moderation: every comment waits for a moderator"),
    ("known_authors", "Known authors: an author with an earlier approved comment is published at once"),
    ("post", "Post-moderation: comments are published at once and moderated after"),
]


def lines(text: str | None) -> list[str]:
    """The non-blank lines of a text area, trimmed."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class CheckboxesField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class SiteForm(FlaskForm):
    name = StringField("Name", filters=[clean_line], validators=[
        DataRequired("Please give the site a name."), Length(max=200, message="At most 200 characters.")])
    origins = TextAreaField("Allowed origins, one per line (e.g. https://news.example.org)")

    def validate_origins(self, field) -> None:
        if not lines(field.data):
            raise ValidationError("Please give at least one origin whose pages will show the comments.")
        try:
            rules.validate_rules({"allowed_origins": lines(field.data)})
        except rules.RulesError as error:
            raise ValidationError(error.problem)


class AssignForm(FlaskForm):
    all_sites = BooleanField("Every site, including sites added later")
    sites = CheckboxesField("Sites", coerce=int, render_kw={"class": "checks"})


class UserForm(AssignForm):
    email = EmailField("Email", filters=[clean_line], validators=[
        DataRequired("Please enter their email address."), Length(max=254), email_syntax])
    role = RadioField("Role", default="moderator", choices=[
        ("moderator", "Moderator: the queue and settings of the sites ticked below"),
        ("admin", "Admin: every site, its settings, and the people")])
    password = PasswordField("Password (give it to them in person; they cannot change it yet)", validators=[
        DataRequired("Please choose a password."),
        Length(min=MIN_PASSWORD, message=f"The password must be at least {MIN_PASSWORD} characters long.")])


class SettingsForm(FlaskForm):
    """Every rule of a site; validated as one document by rules.validate_rules, errors beside each field."""

    moderation_mode = RadioField("Moderation mode", choices=MODE_CHOICES,
                                 validators=[InputRequired("Please choose a moderation mode.")])
    blocked_words = TextAreaField("Blocked words, one per line")
    blocked_words_action = SelectField("A comment with a blocked word:", choices=ACTION_CHOICES)
    held_words = TextAreaField("Held words, one per line")
    held_words_action = SelectField("A comment with a held word:", choices=ACTION_CHOICES)
    blocked_emails = TextAreaField("Blocked email addresses, one per line")
    blocked_email_domains = TextAreaField("Blocked email domains, one per line (subdomains too)")
    blocked_ips = TextAreaField("Blocked IP addresses or ranges, one per line (e.g. 203.0.113.0/24)")
    max_links = IntegerField("Most links before a comment is held", validators=[InputRequired("Please give a number.")])
    flood_seconds = IntegerField("Seconds between two comments from one IP address or email (0: off)",
                                 validators=[InputRequired("Please give a number.")])
    min_length = IntegerField("Shortest comment, in characters (0: any)", validators=[InputRequired("Please give a number.")])
    max_length = IntegerField("Longest comment, in characters", validators=[InputRequired("Please give a number.")])
    max_depth = IntegerField("Deepest reply level (a reply deeper than this joins the level above)",
                             validators=[InputRequired("Please give a number.")])
    min_fill_seconds = IntegerField("Hold a reply form sent back sooner than this many seconds after it was shown (0: off)",
                                    validators=[InputRequired("Please give a number.")])
    close_after_days = IntegerField("Close comments this many days after an article's first comment (0: never)",
                                    validators=[InputRequired("Please give a number.")])
    allowed_origins = TextAreaField("Allowed origins, one per line")
    ip_retention_days = IntegerField("Delete readers' IP addresses after this many days",
                                     validators=[InputRequired("Please give a number.")])
    report_threshold = IntegerField("Readers' reports that hide a published comment until a moderator decides",
                                    validators=[InputRequired("Please give a number.")])

    def fill(self, site_rules: dict) -> None:
        """Show a rules document in the form."""
        for key in rules.DEFAULT_RULES:
            if key in self:
                value = site_rules.get(key, rules.DEFAULT_RULES[key])
                self[key].data = "\n".join(value) if key in LIST_RULES else value

    def document(self, current: dict) -> dict | None:
        """The current rules changed as the form says, or None with an error beside each field at fault."""
        if not self.validate():
            return None
        data = {key: lines(self[key].data) if key in LIST_RULES else self[key].data
                for key in rules.DEFAULT_RULES if key in self}
        for key, value in data.items():  # each rule alone first, so every field at fault is marked at once
            try:
                rules.validate_rules({key: value})
            except rules.RulesError as error:
                self[error.key].errors = [*self[error.key].errors, error.problem]
        if any(self[key].errors for key in data):
            return None
        try:
            return rules.validate_rules({**rules.with_defaults(current), **data})
        except rules.RulesError as error:
            self[error.key].errors = [*self[error.key].errors, error.problem]
            return None


class BenchForm(FlaskForm):
    body = TextAreaField("Comment", filters=[clean_text], validators=[
        DataRequired("Paste a comment to try."), Length(max=rules.BODY_CAP)])
    name = StringField("Name (optional)", filters=[clean_line], validators=[Optional(), Length(max=100)])
    email = EmailField("Email (optional)", filters=[clean_line], validators=[Optional(), Length(max=254), email_syntax])
    website = URLField("Website (optional)", filters=[clean_line], validators=[Optional(), Length(max=200), web_address])


class DistrustEmailForm(FlaskForm):
    email = EmailField("Email address", filters=[clean_line], validators=[
        DataRequired("Please enter the email address."), Length(max=254), email_syntax])


class TrustForm(FlaskForm):
    """From the queue: mark a comment's author trusted or untrusted."""

    comment_id = IntegerField(validators=[InputRequired()])
    trusted = SelectField(choices=[("yes", "Trusted"), ("no", "Untrusted")])


class WebhookForm(FlaskForm):
    url = URLField("URL", filters=[clean_line], validators=[
        DataRequired("Please enter the URL that receives the events."), Length(max=2000, message="At most 2000 characters.")])
    events = CheckboxesField("Events", choices=[(event, event) for event in webhooks.EVENTS],
                             default=list(webhooks.EVENTS), render_kw={"class": "checks"})

    def validate_url(self, field) -> None:
        try:
            field.data = webhooks.validate_url(field.data)
        except ValueError as error:
            raise ValidationError(f"The URL {error}.")

    def validate_events(self, field) -> None:
        # Not DataRequired: that would mark every checkbox required, as if each had to be ticked.
        if not field.data:
            raise ValidationError("Please choose at least one event.")
