"""The one duration grammar: zerops.yml's durations (``healthCheck``, ``readinessCheck``) and the
duration settings (``cri.swarm.monitor``, ``cri.swarm.timeout``) read the same values.

Zerops reads its durations with Go's ``time.ParseDuration`` (or whole seconds as an integer), so
that is the grammar: ``"30s"``, ``"5m"``, ``"1h30m"``, ``"500ms"``, ``"1.5s"``, never a bare
number in a string (Go wants a unit) nor a fraction given as a number. Pure and cheap to
import: the settings are resolved on every call, a cache hit included.
"""

from __future__ import annotations

import re

_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign
    "μs": 1e-6,  # greek mu, both accepted by Go
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}

#: ten years: anything longer is a typo (and floats overflow)
MAX_SECONDS = 10 * 365 * 24 * 3600


def parse_duration(value: object) -> float:
    """Seconds from an integer (seconds) or a Go duration string (``"30s"``, ``"1h30m"``).

    Raises ValueError for anything else, including negative values and bare numbers in a
    string (``"30"``: Go requires a unit); its message says what was wrong and is meant to
    follow the name of the value (``cri.swarm.monitor: ...``, ``zerops.yml:7:22: ...``)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        message = f'expected whole seconds or a duration like "30s", got {value!r}'
        raise ValueError(message)
    if isinstance(value, int):
        if value < 0:
            message = f"a duration cannot be negative, got {value}"
            raise ValueError(message)
        if value > MAX_SECONDS:
            message = "a duration over ten years is too long"
            raise ValueError(message)
        return float(value)
    if value == "0":
        return 0.0
    if re.fullmatch(r"[0-9]+", value):
        message = f'missing unit in duration "{value}" (write "{value}s" or the integer {value})'
        raise ValueError(message)
    total = 0.0
    position = 0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(value):
        message = f'invalid duration "{_clip(value)}" (use e.g. "30s", "5m", "1h30m", "500ms")'
        raise ValueError(message)
    if total > MAX_SECONDS:
        message = f'a duration of "{_clip(value)}" is over ten years, too long'
        raise ValueError(message)
    return total


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
