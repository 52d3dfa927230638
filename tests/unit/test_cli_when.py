"""signoff.cli.when: one syntax for CLI times and durations; good and bad inputs side by side."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from signoff.cli.main import main
from signoff.cli.remote import EXIT_USAGE, CliError
from signoff.cli.when import parse_duration, parse_time, time_filter, time_flag

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)
NOT_A_TIME = "not a time; use now, a duration ago like 30m"
NOT_A_DURATION = "not a duration; use a number and a unit (s, m, h, d, w)"

# text -> the time it means at NOW, or the start of the error. Rows marked (i) were
# accepted by the old `policy insights` parser, (a) by the old audit filter parser.
TIMES: list[tuple[str, dt.datetime | str]] = [
    ("now", NOW),  # (a)
    (" now ", NOW),
    ("30s", NOW - 30 * S),  # (i)
    ("15m", NOW - 15 * 60 * S),  # (i)
    ("2h", NOW - 2 * 3600 * S),  # (i)
    ("7d", NOW - dt.timedelta(days=7)),  # (i)
    ("1w", NOW - dt.timedelta(weeks=1)),  # (i)
    ("-2h", NOW - 2 * 3600 * S),  # (a) (i)
    ("-30m", NOW - 30 * 60 * S),  # (a) (i)
    ("-7d", NOW - dt.timedelta(days=7)),  # (a) (i)
    ("1h30m", NOW - 5400 * S),  # (i)
    ("-1h30m", NOW - 5400 * S),  # (i)
    ("1h 30m", NOW - 5400 * S),
    (" 30d ", NOW - dt.timedelta(days=30)),  # (i)
    ("0s", NOW),
    ("2026-01-01", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),  # (a) (i)
    ("2026-01-01T09:00:00Z", dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC)),  # (a) (i)
    ("2026-01-01T09:00:00+02:00", dt.datetime(2026, 1, 1, 7, tzinfo=dt.UTC)),  # (a) (i)
    ("2026-01-01T09:00:00", dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC)),  # (a) (i)
    ("2026-01-01 09:00", dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC)),  # (a) (i)
    ("2026-01-01T09:00:00.25Z", dt.datetime(2026, 1, 1, 9, 0, 0, 250000, tzinfo=dt.UTC)),
    ("", NOT_A_TIME),
    ("yesterday", NOT_A_TIME),
    ("3x", NOT_A_TIME),
    ("30", NOT_A_TIME),
    ("2H", NOT_A_TIME),
    ("1.5h", NOT_A_TIME),
    ("+2h", NOT_A_TIME),
    ("--2h", NOT_A_TIME),
    ("2h ago", NOT_A_TIME),
    ("-now", NOT_A_TIME),
    ("1y", NOT_A_TIME),
    ("\u0663d", NOT_A_TIME),  # an Arabic-Indic 3: int() would read it, the syntax does not
    ("2026-13-01", NOT_A_TIME),
    ("99999999999w", "too far back"),
    ("9" * 5000 + "s", "too far back"),
]

DURATIONS: list[tuple[str, dt.timedelta | str]] = [
    ("90s", 90 * S),
    ("30m", 30 * 60 * S),
    ("2h", 2 * 3600 * S),
    ("2d", dt.timedelta(days=2)),
    ("1w", dt.timedelta(weeks=1)),
    ("1h30m", 5400 * S),
    ("1h 30m", 5400 * S),  # the old `reviews` parser dropped spaces
    ("1 h", 3600 * S),
    (" 2d ", dt.timedelta(days=2)),
    ("0s", dt.timedelta(0)),
    ("", NOT_A_DURATION),
    ("soon", NOT_A_DURATION),
    ("-1h", NOT_A_DURATION),
    ("1.5h", NOT_A_DURATION),
    ("1H", NOT_A_DURATION),
    ("30", NOT_A_DURATION),
    ("1y", NOT_A_DURATION),
    ("now", NOT_A_DURATION),
    ("2026-01-01", NOT_A_DURATION),
    ("99999999999w", "duration out of range"),
]


@pytest.mark.parametrize(("text", "want"), TIMES)
def test_times_read_as_the_table_says(text: str, want: dt.datetime | str) -> None:
    if isinstance(want, dt.datetime):
        got = parse_time(text, NOW)
        assert got == want
        assert got.tzinfo is not None
    else:
        with pytest.raises(ValueError, match=f"^{re.escape(want)}"):
            parse_time(text, NOW)


@pytest.mark.parametrize(("text", "want"), DURATIONS)
def test_durations_read_as_the_table_says(text: str, want: dt.timedelta | str) -> None:
    if isinstance(want, dt.timedelta):
        assert parse_duration(text) == want
    else:
        with pytest.raises(ValueError, match=f"^{re.escape(want)}"):
            parse_duration(text)


def test_a_bad_flag_or_filter_names_itself_and_every_form() -> None:
    with pytest.raises(CliError) as err:
        time_flag("--since", "3x", NOW)
    assert err.value.code == EXIT_USAGE
    assert str(err.value) == (
        "--since '3x': not a time; use now, a duration ago like 30m, 2h, 7d or 1h30m (-7d too), "
        "or RFC 3339 like 2026-01-01T09:00:00Z or a date like 2026-01-01 (UTC without a zone)"
    )
    with pytest.raises(CliError) as err:
        time_filter("until", "soon", NOW)
    assert str(err.value).startswith(f"filter until='soon': {NOT_A_TIME}")


# The policy directory of `replay` ("{empty}") is an empty one: it loads, so the filter is next.
BAD_FLAGS = [
    (["policy", "insights", "--since", "3x"], f"signoff: --since '3x': {NOT_A_TIME}"),
    (["policy", "insights", "--until", "soon"], f"signoff: --until 'soon': {NOT_A_TIME}"),
    (["audit", "query", "since=3x"], f"signoff: filter since='3x': {NOT_A_TIME}"),
    (["audit", "export", "until=3x"], f"signoff: filter until='3x': {NOT_A_TIME}"),
    (["policy", "replay", "--policies", "{empty}", "since=3x"], "signoff: filter since='3x'"),
    (["reviews", "list", "--older-than", "soon"], "argument --older-than: 'soon': not a duration"),
    (["reviews", "approve", "x", "--grant-for=-1h"], "argument --grant-for: '-1h': not a duration"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_FLAGS)
def test_every_time_flag_refuses_bad_input_with_exit_2(
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Parsing happens before any call: the server address is never dialled.
    monkeypatch.setenv("SIGNOFF_SERVER", "127.0.0.1:1")
    monkeypatch.setenv("SIGNOFF_TOKEN", "t")
    try:
        code = main([a.replace("{empty}", str(tmp_path)) for a in argv])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    assert (code, out) == (EXIT_USAGE, "")
    assert message in err
