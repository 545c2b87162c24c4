"""run.crontab schedules (pure): a ``timing`` parsed into the values each field allows, which the
app image's ``cri-cron`` script (templates/cron.sh.j2) matches every minute in the container.

Standard five fields (minute hour day-of-month month day-of-week, UTC like the containers): ``*``,
numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, lists ``a,b``, month and weekday names
(``jan``, ``mon``; 7 is Sunday too) and the macros ``@yearly`` ``@annually`` ``@monthly``
``@weekly`` ``@daily`` ``@midnight`` ``@hourly``. As in cron, when both day fields are
restricted a day matching either runs the job.
"""

from __future__ import annotations

from dataclasses import dataclass

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_NAMES = {
    3: {
        m: i + 1
        for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
    },
    4: {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]  # 0 = Sunday
    either_day: bool  # both day fields restricted: a day matching either one runs the job

    def matches(self, minute: int, hour: int, day: int, month: int, weekday: int) -> bool:
        """What cri-cron's shell test does for one minute (kept equal by the tests)."""
        if minute not in self.minutes or hour not in self.hours or month not in self.months:
            return False
        if self.either_day:
            return day in self.days or weekday in self.weekdays
        return day in self.days and weekday in self.weekdays


def parse(timing: str) -> Schedule:
    """The schedule of a crontab ``timing``; CronError says what is wrong with it."""
    text = _MACROS.get(timing.strip().lower(), timing.strip())
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            f"{timing!r} is not a cron schedule: expected 5 fields (minute hour day month weekday) "
            f"or one of {', '.join(_MACROS)}"
        )
    values = [_field(i, part) for i, part in enumerate(parts)]
    weekdays = tuple(sorted({0 if d == 7 else d for d in values[4]}))
    return Schedule(
        tuple(values[0]),
        tuple(values[1]),
        tuple(values[2]),
        tuple(values[3]),
        weekdays,
        either_day=not parts[2].startswith("*") and not parts[4].startswith("*"),
    )


def _field(index: int, text: str) -> list[int]:
    name, low, high = _FIELDS[index]
    out: set[int] = set()
    for item in text.split(","):
        step = 1
        body = item
        if "/" in item:
            body, _, step_text = item.partition("/")
            step = _number(index, step_text, 1, high - low + 1 if high > low else 1, what="step")
        if body == "*":
            start, end = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            start, end = _number(index, a, low, high), _number(index, b, low, high)
            if start > end:
                raise CronError(f"{name} range {body!r} runs backwards")
        else:
            start = _number(index, body, low, high)
            end = high if "/" in item else start
        out.update(range(start, end + 1, step))
    return sorted(out)


def _number(index: int, text: str, low: int, high: int, what: str = "") -> int:
    name = _FIELDS[index][0]
    value = _NAMES.get(index, {}).get(text.lower()) if not what else None
    if value is None:
        if not text.isdigit():
            raise CronError(
                f"{name} {what or 'value'} {text!r} is not a number"
                + (" or a name" if index in _NAMES and not what else "")
            )
        value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name} {what or 'value'} {value} is outside {low}-{high}")
    return value
