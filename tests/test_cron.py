"""run.crontab schedules: the parser (cri_tasks.cron) and the shell that matches them in the
container (templates/cron.sh.j2), which must agree minute for minute."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from cri_tasks.cron import CronError, parse
from cri_tasks.dockerfile import render


@pytest.mark.parametrize(
    ("timing", "due", "not_due"),
    [
        ("* * * * *", (0, 0, 1, 1, 0), None),
        ("*/15 9-17 * * mon-fri", (30, 9, 2, 12, 2), (30, 9, 6, 12, 0)),
        ("0 0 1 * *", (0, 0, 1, 5, 3), (0, 0, 2, 5, 3)),
        ("@hourly", (0, 7, 9, 9, 1), (1, 7, 9, 9, 1)),
        ("5,10 1 * JAN sun", (10, 1, 8, 1, 0), (10, 1, 8, 2, 0)),
        ("0 12 13 * 5", (0, 12, 13, 3, 1), (0, 12, 14, 3, 1)),  # both day fields: either matches
        ("0 12 13 * 5", (0, 12, 14, 3, 5), (0, 12, 14, 3, 4)),
        ("0 0 * * 7", (0, 0, 4, 4, 0), None),  # 7 is Sunday too
        ("10-20/5 * * * *", (15, 3, 3, 3, 3), (16, 3, 3, 3, 3)),
    ],
)
def test_a_schedule_is_due_when_cron_would_run_it(
    timing: str, due: tuple[int, ...], not_due: tuple[int, ...] | None
) -> None:
    s = parse(timing)
    assert s.matches(*due)
    if not_due is not None:
        assert not s.matches(*not_due)


@pytest.mark.parametrize(
    ("timing", "message"),
    [
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", "minute value 60 is outside 0-59"),
        ("* 5-1 * * *", "hour range '5-1' runs backwards"),
        ("*/0 * * * *", "minute step 0 is outside"),
        ("* * * foo *", "month value 'foo' is not a number or a name"),
        ("@often", "not a cron schedule"),
    ],
)
def test_a_bad_timing_says_what_is_wrong(timing: str, message: str) -> None:
    with pytest.raises(CronError, match=message.replace("(", r"\(").replace("*", r"\*")):
        parse(timing)


def test_the_container_script_agrees_with_the_parser(tmp_path: Path) -> None:
    timings = ["*/7 */5 * * *", "0 12 13 * 5", "15 3 1-10 2,4 *", "* * * * sat,sun"]
    jobs = []
    for i, t in enumerate(timings):
        s = parse(t)
        jobs.append(
            {
                "command": f"echo {i} >> {tmp_path}/ran",
                "working_dir": "/",
                "all_containers": True,
                "either_day": s.either_day,
                **{
                    k: " ".join(str(v) for v in getattr(s, k))
                    for k in ("minutes", "hours", "days", "months", "weekdays")
                },
            }
        )
    script = tmp_path / "cri-cron"
    script.write_text(render("cron.sh.j2", {"setup": "app", "jobs": jobs, "first_host": "app-1"}))
    rng = random.Random(15)
    for _ in range(40):
        when = (
            rng.choice([0, 7, 14, 15, 30]),
            rng.choice([0, 3, 5, 12]),
            rng.choice([1, 2, 13, 20]),
            rng.choice([1, 2, 4]),
            rng.randrange(7),
        )
        (tmp_path / "ran").write_text("")
        subprocess.run(["sh", str(script), "tick", *map(str, when)], check=True, capture_output=True)
        ran = sorted(int(x) for x in (tmp_path / "ran").read_text().split())
        assert ran == [i for i, t in enumerate(timings) if parse(t).matches(*when)], when
