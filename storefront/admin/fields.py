"""Form fields shared by the admin's forms: prices and counts parsed exactly as the catalog's services do."""

from wtforms import StringField

from storefront.catalog import editing


def strip(value):
    """A filter: the text without surrounding spaces (anything else as it is)."""
    return value.strip() if isinstance(value, str) else value


class MoneyField(StringField):
    """A price that only takes what editing.parse_price takes: no exponent, no NaN, two decimals at most."""

    def process_formdata(self, valuelist):
        self.data = None
        self.data = editing.parse_price(valuelist[0] if valuelist else "")

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else f"{self.data:.2f}"


class CountField(StringField):
    """A whole number of units (or a limit) within bounds; optional ones may be left empty."""

    def __init__(
        self, label=None, validators=None, minimum=0, maximum=editing.MAX_STOCK, optional=False, **kw
    ):
        super().__init__(label, validators, **kw)
        self.minimum, self.maximum, self.optional = minimum, maximum, optional

    def process_formdata(self, valuelist):
        text = valuelist[0] if valuelist else ""
        self.data = None
        if self.optional and not text.strip():
            return
        self.data = editing.parse_count(text, self.label.text, self.minimum, self.maximum)

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else str(self.data)
