"""Cron expressions as Kubeflow Pipelines reads them, checked before any API call.

KFP's scheduler uses Go's robfig/cron with a seconds field (6 fields). People usually write the
5-field Unix form, so that is accepted and given a leading "0" seconds field.
"""

from __future__ import annotations

import re

# (name, lowest, highest, names allowed in place of numbers)
_FIELDS = (
    ("seconds", 0, 59, ()),
    ("minutes", 0, 59, ()),
    ("hours", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                      "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_ITEM = re.compile(r"^(?P<range>\*|\?|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(?P<step>[0-9]+))?$")


class CronError(ValueError):
    """The schedule's cron expression is not one Kubeflow Pipelines accepts."""


def kfp_cron(expression: str) -> str:
    """Returns `expression` in KFP's 6-field form.

    Raises:
      CronError: naming the field and value that are wrong.
    """
    expression = " ".join(expression.split())
    if expression.lower() in _DESCRIPTORS:
        return expression.lower()
    fields = expression.split(" ")
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise CronError(f"cron {expression!r} has {len(fields)} fields: write 5 (minute hour "
                        "day-of-month month day-of-week, e.g. '0 3 * * *') or 6 with seconds first")
    for value, (name, lowest, highest, names) in zip(fields, _FIELDS):
        for item in value.split(","):
            _check_item(expression, item, name, lowest, highest, names)
    return " ".join(fields)


def _check_item(expression: str, item: str, name: str, lowest: int, highest: int,
                names: tuple[str, ...]) -> None:
    match = _ITEM.match(item)
    if not match:
        raise CronError(f"cron {expression!r}: {item!r} is not a valid {name} value")
    if match["step"] is not None and int(match["step"]) == 0:
        raise CronError(f"cron {expression!r}: the {name} step in {item!r} must be positive")
    bounds = match["range"]
    if bounds in ("*", "?"):
        if bounds == "?" and name not in ("day of month", "day of week"):
            raise CronError(f"cron {expression!r}: '?' is only allowed for the day fields")
        return
    for bound in bounds.split("-"):
        number = names.index(bound.upper()) + lowest if bound.upper() in names else (
            int(bound) if bound.isdigit() else None)
        if number is None:
            raise CronError(f"cron {expression!r}: {bound!r} is not a valid {name} value")
        if not lowest <= number <= highest:
            raise CronError(f"cron {expression!r}: {name} {bound!r} is outside "
                            f"{lowest}-{highest}")
