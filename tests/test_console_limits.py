"""The console's text fields stop where the service does: each maxlength is the width of the
column the field is stored in, so a browser never lets an admin type what createKey refuses."""

from __future__ import annotations

from html.parser import HTMLParser

from keyrelease.models import ApiKey
from keyrelease.web import PAGES

#: A create-key form field and the column it is stored in.
STORED_IN = {"name": "name", "partnerName": "partner_name", "partnerEmail": "partner_email"}


class Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.maxlength: dict[str, str | None] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "input" and attributes.get("name") in STORED_IN:
            self.maxlength[attributes["name"]] = attributes.get("maxlength")


def test_each_text_field_is_as_long_as_its_column():
    inputs = Inputs()
    inputs.feed((PAGES / "console.html").read_text())
    widths = {field: str(ApiKey._meta.fields_map[column].max_length) for field, column in STORED_IN.items()}
    assert inputs.maxlength == widths
