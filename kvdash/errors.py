"""The one exception type kvdash raises for bad input.

Every message names the offending field or value, so the CLI can print it as one line and the
dashboard can show it in an error box.
"""


class KvdashError(ValueError):
    """Invalid model description, scenario, config file or catalog entry."""
