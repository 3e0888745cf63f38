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

from aggregator.gazetteer import caseless

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
def _spellings(names: dict[str, int]) -> str:
    # Capitalized or all caps, as English writes them: "may" and "sat" stay ordinary words.
    forms = {form for name in names for form in (name.capitalize(), name.upper())}
    return "|".join(sorted(forms, key=len, reverse=True))


_M = "(?:" + _spellings(_MONTHS) + r")\.?"
_WD = _spellings(_WEEKDAYS)
_D = r"[0-3]?\d(?:st|nd|rd|th)?"
_Y = r"(?:,?\s+(?P<{}>(?:19|20)\d\d)\b)?"
_DASH = r"\s*(?:-|–|—|to|until|and)\s*"

# One scan for every written form; at each position the alternatives are tried in order, so
# "19 to 21 November 2024" is read as one range, not as "21 November 2024". Every
# alternative starts with a digit or a month name, which keeps the scan cheap.
_DATE = re.compile(
    rf"\b(?P<ra>{_D}){_DASH}(?P<rb>{_D})\s+(?P<rm>{_M}){_Y.format('ry')}"
    rf"|\b(?P<qm>{_M})\s+(?P<qa>{_D}){_DASH}(?P<qb>{_D})\b{_Y.format('qy')}"
    rf"|\b(?P<dd>{_D})\s+(?P<dm>{_M})(?![\w]){_Y.format('dy')}"
    rf"|\b(?P<mm>{_M})\s+(?P<md>{_D})\b{_Y.format('my')}"
    r"|(?<![\d-])(?P<iy>(?:19|20)\d\d)-(?P<im>[01]\d)-(?P<id>[0-3]\d)(?![\d-])"
)
# Every date form has a month name or an ISO date; find those first (cheap), then read the
# date around each one.
# Two scans, each opening with a set of characters it can skip to: a month's first three
# letters at the start of a word (the test on the character before follows them), and an ISO
# date. Neither overlaps the other, so their hints in text order are the hints of one scan.
_MONTH_HINT = re.compile("(?:" + "|".join(sorted(
    {n[:3].capitalize() for n in _MONTHS} | {n[:3].upper() for n in _MONTHS})) + r")(?<!\w...)")
_ISO_HINT = re.compile(r"\d{4}-\d")
_HINT_BACK = 16
_HINT_SPAN = 48
_DAYS_BEFORE_MONTH = re.compile(r"\d[\d\s\-–—tonadul]*$")


def _date_hints(text: str) -> list[int]:
    """Offsets where a date may start: a little before each month name or ISO date."""
    hints: list[tuple[int, int]] = []
    for hint in _MONTH_HINT.finditer(text):
        at = hint.start()
        back = max(0, at - _HINT_BACK)
        # The date may start with the day(s) before the month: from the earliest digit.
        digits = _DAYS_BEFORE_MONTH.search(text, back, at)
        hints.append((at, digits.start() if digits else at))
    if "-" in text:
        iso = [(hint.start(), hint.start()) for hint in _ISO_HINT.finditer(text)]
        if iso:
            hints = sorted(hints + iso)
    return [start for _, start in hints]


_WEEKDAY_BEFORE = re.compile(rf"\b(?P<wd>{_WD})\.?,?\s*\(?\s*$")
_NEAREST_YEAR_DAYS = 183
# "on Wednesday", "Thursday," with no date: the nearest such weekday to the reference date.
_WEEKDAY_ONLY = re.compile(
    rf"\b(?:on|On|last|this|next)\s+(?P<wd>{_WD})\b(?![\s,(]*(?:\d|{_M}))"
)
_WEEKDAY_START = re.compile("|".join(sorted(
    {n[:3].capitalize() for n in _WEEKDAYS} | {n[:3].upper() for n in _WEEKDAYS})))
"""The start of every weekday `_WD` spells: a cheap scan (it skips to capitals) that proves a
text has none."""

# Words just before a date that make it a reference to another time, not the item's date.
_REFERENCE_WORDS = re.compile(
    r"(?:since|until|till|through|before|after|by|from|dated|as of|in force|effective|"
    r"expires?|deadline|born)\s*\(?\s*$",
)
"""Read in a `caseless` text (case-sensitive matching is the cheaper scan)."""
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
    """Every date `text` states, in reading order.

    A day and month need a year, or a weekday that pins the year. With `infer_year`, a day
    and month alone also count, in the year that puts them nearest `now`, and so does a bare
    weekday ("on Wednesday"), as the nearest such day (for comparing two items' events,
    never for an item's own date).
    """
    found: list[StatedDate] = []
    end = -1
    for start in _date_hints(text):
        if start < end:
            continue
        match = _DATE.search(text, start, start + _HINT_SPAN)
        if match is None:
            continue
        end = match.end()
        stated = _stated(match, text, now, infer_year)
        if stated is not None:
            found.append(stated)
    if infer_year:
        weekdays = _WEEKDAY_ONLY.finditer(text) if _WEEKDAY_START.search(text) else ()
        taken = [(d.offset, d.offset + 12) for d in found]
        for match in weekdays:
            if any(start <= match.start(1) <= end for start, end in taken):
                continue
            weekday = _WEEKDAYS[match.group("wd").lower()]
            day_of = now.date() + timedelta(days=(weekday - now.date().weekday() + 3) % 7 - 3)
            found.append(StatedDate(day_of, day_of, match.start(), True, False))
        found.sort(key=lambda d: d.offset)
    return found


def _stated(
    match: re.Match[str], text: str, now: datetime, infer_year: bool
) -> StatedDate | None:
    g = match.groupdict()
    if g["iy"]:
        year_text, month, first, last = g["iy"], int(g["im"]), g["id"], g["id"]
    else:
        kind = next(k for k in ("r", "q", "d", "m") if g[f"{k}y"] is not None
                    or g.get(f"{k}m" if k in "rqd" else "mm"))
        month_name = {"r": g["rm"], "q": g["qm"], "d": g["dm"], "m": g["mm"]}[kind]
        month = _MONTHS[month_name.rstrip(".").lower()]
        year_text = g[f"{kind}y"]
        first = {"r": g["ra"], "q": g["qa"], "d": g["dd"], "m": g["md"]}[kind]
        last = {"r": g["rb"], "q": g["qb"], "d": g["dd"], "m": g["md"]}[kind]
    before = text[max(0, match.start() - 16) : match.start()]
    weekday_match = _WEEKDAY_BEFORE.search(before)
    weekday = _WEEKDAYS[weekday_match.group("wd").lower()] if weekday_match else None
    try:
        day_first, day_last = int(first.rstrip("stndrh")), int(last.rstrip("stndrh"))
        if year_text:
            end = date(int(year_text), month, day_last)
        elif weekday is not None:
            pinned = (_near_weekday(month, day_last, weekday, now.date()) if infer_year
                      else None) or _pin_year(month, day_last, weekday, now.date())
            if pinned is None:
                return None
            end = pinned
        elif infer_year:
            end = _nearest(month, day_last, now.date())
        else:
            return None
        start = end.replace(day=day_first)
    except ValueError:
        return None
    if start > end:
        return None
    start_offset = match.start() - (len(before) - weekday_match.start()) if weekday_match \
        else match.start()
    lookback = text[max(0, start_offset - _LOOKBACK) : start_offset]
    return StatedDate(
        start=start,
        end=end,
        offset=start_offset,
        has_weekday=weekday is not None,
        is_reference=bool(_REFERENCE_WORDS.search(caseless(lookback))) and start == end,
    )


def _nearest(month: int, day: int, reference: date) -> date:
    """The date with this month and day nearest `reference` (within half a year)."""
    candidate = date(reference.year, month, day)
    if (candidate - reference).days > _NEAREST_YEAR_DAYS:
        return date(reference.year - 1, month, day)
    if (reference - candidate).days > _NEAREST_YEAR_DAYS:
        return date(reference.year + 1, month, day)
    return candidate


def _near_weekday(month: int, day: int, weekday: int, reference: date) -> date | None:
    """The date with this month, day and weekday within half a year of `reference` (an
    advisory's "Wednesday (December 4)" may lie ahead of it)."""
    for year in (reference.year, reference.year + 1, reference.year - 1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate.weekday() == weekday and abs((candidate - reference).days) <= 183:
            return candidate
    return None


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
