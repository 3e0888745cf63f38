"""Dates stated in an item's text (pure: `now` is passed in, nothing reads the clock).

Agencies write dates in a handful of ways: a dateline ("26 November 2024", "The Hague,
26 November 2024", "November 25, 2024"), an event sentence ("On Wednesday 4 December 2024",
"on Tuesday (26 November 2024)", "From 19 to 21 November 2024") and, without a year, a
weekday with a day ("on Wednesday (December 4)"), whose year the weekday pins down. A date is
never guessed: a day without a year or weekday, or a month alone, gives nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

PUBLISH_HOUR = time(12, 0, tzinfo=UTC)
"""Text dates carry no time of day; noon UTC keeps the calendar day in most time zones."""

_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4,
    "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11,
    "december": 12, "dec": 12,
}
_WEEKDAYS = {
    "monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "tues": 1, "wednesday": 2, "wed": 2,
    "thursday": 3, "thu": 3, "thurs": 3, "friday": 4, "fri": 4, "saturday": 5, "sat": 5,
    "sunday": 6, "sun": 6,
}
_MONTH = r"\b(?P<{}>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY = r"(?:\b(?P<wd>" + "|".join(sorted(_WEEKDAYS, key=len, reverse=True)) + r")\.?,?\s*\(?\s*)?"
_DAY = r"\b(?P<{}>[0-3]?\d)(?:st|nd|rd|th)?\b"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_DASH = r"\s*(?:-|–|—|to|until|and)\s*"

# Ordered: ranges before single dates, so "19 to 21 November 2024" is read as one range.
_PATTERNS = [
    # 19 to 21 November 2024 / 19-21 Nov 2024
    re.compile(_WEEKDAY + _DAY.format("d1") + _DASH + _DAY.format("d2") + r"\s+"
               + _MONTH.format("m2") + r",?\s+" + _YEAR, re.IGNORECASE),
    # November 19-21, 2024
    re.compile(_WEEKDAY + _MONTH.format("m2") + r"\s+" + _DAY.format("d1") + _DASH
               + _DAY.format("d2") + r",?\s+" + _YEAR, re.IGNORECASE),
    # (Wednesday) 4 December 2024
    re.compile(_WEEKDAY + _DAY.format("d2") + r"\s+" + _MONTH.format("m2") + r",?\s+" + _YEAR,
               re.IGNORECASE),
    # (Wednesday,) December 4, 2024
    re.compile(_WEEKDAY + _MONTH.format("m2") + r"\s+" + _DAY.format("d2") + r",?\s+" + _YEAR,
               re.IGNORECASE),
    # 2024-12-04
    re.compile(r"(?<![\d-])(?P<year>(?:19|20)\d\d)-(?P<mnum>[01]\d)-(?P<d2>[0-3]\d)(?![\d-])"),
    # Wednesday (December 4) / Wednesday 4 December: the weekday pins the year
    re.compile(r"\b(?P<wd>" + "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
               + r")\.?,?\s*\(?\s*(?:" + _MONTH.format("m2") + r"\s+" + _DAY.format("d2")
               + r"|" + _DAY.format("d3") + r"\s+" + _MONTH.format("m3") + r")(?![\w,]*\s*\d{4})",
               re.IGNORECASE),
]

# Day and month without a year or weekday ("on 4 November", "17 and 18 October"): only read
# when the caller may place the year by a reference date (dedup comparing two items).
_YEARLESS = [
    re.compile(_DAY.format("d1") + _DASH + _DAY.format("d2") + r"\s+" + _MONTH.format("m2")
               + r"(?![\w,]*\s*\d{4})", re.IGNORECASE),
    re.compile(_DAY.format("d2") + r"\s+" + _MONTH.format("m2") + r"(?![\w,]*\s*\d{4})",
               re.IGNORECASE),
    re.compile(_MONTH.format("m2") + r"\s+" + _DAY.format("d2") + r"(?![\w,]*\s*\d{4})",
               re.IGNORECASE),
]
_NEAREST_YEAR_DAYS = 183
# "on Wednesday", "Thursday," with no date: the nearest such weekday to the reference date.
_WEEKDAY_ONLY = re.compile(
    r"\b(?:on|last|this|next)\s+(?P<wd>" + "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
    + r")\b(?![\s,(]*(?:\d|" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r"))",
    re.IGNORECASE,
)

# Words just before a date that make it a reference to another time, not the item's date.
_REFERENCE_WORDS = re.compile(
    r"(?:since|until|till|before|after|by|from|dated|as of|in force|effective|"
    r"expires?|deadline|born)\s*\(?\s*$",
    re.IGNORECASE,
)
_LOOKBACK = 24
_WEEKDAY_YEARS = 12
"""How many years back a weekday-pinned date may lie."""


@dataclass(frozen=True, slots=True)
class StatedDate:
    """A date the text states: a day or a range of days."""

    start: date
    end: date
    offset: int
    """Where in the text it starts."""
    has_weekday: bool
    is_reference: bool
    """Introduced by "since", "until", "by"...: a date the text refers to, not its own."""


def find_dates(text: str, now: datetime, *, infer_year: bool = False) -> list[StatedDate]:
    """Every date `text` states, in reading order; overlapping matches keep the first pattern.

    With `infer_year`, a day and month without a year also count, in the year that puts them
    nearest `now` (for comparing two items' events, never for an item's own date).
    """
    found: list[StatedDate] = []
    taken: list[tuple[int, int]] = []
    patterns = [*_PATTERNS, *_YEARLESS, _WEEKDAY_ONLY] if infer_year else _PATTERNS
    for pattern in patterns:
        for match in pattern.finditer(text):
            span = match.span()
            if any(span[0] < end and start < span[1] for start, end in taken):
                continue
            stated = _stated(match, text, now, infer_year=infer_year)
            if stated is not None:
                found.append(stated)
                taken.append(span)
    found.sort(key=lambda d: d.offset)
    return found


def _stated(
    match: re.Match[str], text: str, now: datetime, *, infer_year: bool = False
) -> StatedDate | None:
    groups = match.groupdict()
    weekday = _WEEKDAYS.get((groups.get("wd") or "").lower().rstrip("."))
    if infer_year and weekday is not None and match.re is _WEEKDAY_ONLY:
        offset = (weekday - now.date().weekday() + 3) % 7 - 3
        day_of = now.date() + timedelta(days=offset)
        return StatedDate(day_of, day_of, match.start(), True, False)
    month_name = groups.get("m2") or groups.get("m3")
    month = _MONTHS[month_name.lower()] if month_name else int(groups.get("mnum") or 0)
    day = int(groups.get("d2") or groups.get("d3") or 0)
    year_text = groups.get("year")
    try:
        if year_text:
            end = date(int(year_text), month, day)
        elif weekday is not None:
            pinned = _pin_year(month, day, weekday, now.date())
            if pinned is None:
                return None
            end = pinned
        elif infer_year:
            end = _nearest(month, day, now.date())
        else:
            return None
        start = end.replace(day=int(groups["d1"])) if groups.get("d1") else end
    except ValueError:
        return None
    if start > end:
        return None
    before = text[max(0, match.start() - _LOOKBACK) : match.start()]
    return StatedDate(
        start=start,
        end=end,
        offset=match.start(),
        has_weekday=weekday is not None,
        is_reference=bool(_REFERENCE_WORDS.search(before)) and not groups.get("d1"),
    )


def _nearest(month: int, day: int, reference: date) -> date:
    """The date with this month and day nearest `reference` (within half a year)."""
    candidate = date(reference.year, month, day)
    if (candidate - reference).days > _NEAREST_YEAR_DAYS:
        return date(reference.year - 1, month, day)
    if (reference - candidate).days > _NEAREST_YEAR_DAYS:
        return date(reference.year + 1, month, day)
    return candidate


def _pin_year(month: int, day: int, weekday: int, today: date) -> date | None:
    """The latest date on or before tomorrow with this month, day and weekday."""
    latest = today + timedelta(days=1)
    for year in range(latest.year, latest.year - _WEEKDAY_YEARS, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= latest and candidate.weekday() == weekday:
            return candidate
    return None


def publication_date(text: str, now: datetime) -> datetime | None:
    """The item's own date when its opening states one (dateline or lead sentence), else None.

    Only the first paragraph and a leading dateline count: dates further on refer to other
    events. A range gives its last day (reports follow the event), and a date after `now`
    (an announcement of a future event) is not a publication date.
    """
    opening = _opening(text)
    for stated in find_dates(opening, now):
        if stated.is_reference:
            continue
        if stated.end > now.date() + timedelta(days=1):
            continue
        return datetime.combine(stated.end, PUBLISH_HOUR)
    return None


def _opening(text: str) -> str:
    """The dateline (a short first line) plus the first paragraph that is a real sentence."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    opening: list[str] = []
    for paragraph in paragraphs[:3]:
        opening.append(paragraph)
        if len(paragraph) > 80:
            break
    return "\n\n".join(opening)
