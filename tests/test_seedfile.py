"""The seed-file parser: the format of DESIGN.md and each of its quirks."""

from __future__ import annotations

import pytest
from conftest import SEEDS, seed_text

from aggregator.errors import ParseError
from aggregator.sources.seedfile import decode_seed_bytes, parse_seed_bytes, parse_seed_text


def test_bundled_seeds_parse_into_their_twenty_items() -> None:
    items = []
    for path in sorted(SEEDS.glob("*.txt")):
        items += parse_seed_bytes(path.read_bytes(), path.name)
    assert len(items) == 20
    labels = {item.agency_label for item in items}
    assert labels == {"Europol", "Eurojust", "NATO", "Interpol (news and events)",
                      "US Defense Joint Chiefs of Staff"}
    assert all(item.title and item.content for item in items)


def test_body_keeps_blank_lines_and_short_title_like_lines() -> None:
    text = seed_text([
        ("NATO Secretary General meets the President of Montenegro", "NATO",
         "On Wednesday the Secretary General will meet the President.\n\nMedia advisory\n\n"
         "15:00 (CET) Remarks\n\nMedia coverage"),
        ("Major cybercrime operation nets 1,006 suspects", "Interpol (news and events)",
         "LYON, France – Authorities arrested suspects.\n\nResults of Operation Serengeti\n\n"
         "Private sector partners helped."),
    ])
    first, second = parse_seed_text(text, "s.txt")
    assert first.title == "NATO Secretary General meets the President of Montenegro"
    assert "Media advisory\n\n15:00 (CET) Remarks\n\nMedia coverage" in first.content
    assert "Results of Operation Serengeti" in second.content
    assert second.agency_label == "Interpol (news and events)"


def test_item_origins_name_file_and_title_line() -> None:
    text = seed_text([("One", "NATO", "Body one."), ("Two", "Europol", "Body\n\ntwo.")])
    first, second = parse_seed_text(text, "seeds/x.txt")
    assert first.origin == "seeds/x.txt:1"
    assert second.origin == "seeds/x.txt:7"
    assert (first.position, second.position) == (0, 1)


def test_bom_and_crlf_are_tolerated() -> None:
    text = seed_text([("Title one", "NATO", "Para one.\n\nPara two."), ("Title two", "NATO", "B")])
    data = b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()
    items = parse_seed_bytes(data, "crlf.txt")
    assert [i.title for i in items] == ["Title one", "Title two"]
    assert items[0].content == "Para one.\n\nPara two."
    assert "\r" not in items[0].content


def test_lines_of_spaces_count_as_blank() -> None:
    text = "Spaced title\n   \nSource: NATO\n\t\nBody text.\n"
    (item,) = parse_seed_text(text, "s.txt")
    assert (item.title, item.agency_label, item.content) == ("Spaced title", "NATO", "Body text.")


def test_source_line_is_case_and_space_tolerant() -> None:
    (item,) = parse_seed_text("T\n\nsource :  Europol \n\nB\n", "s.txt")
    assert item.agency_label == "Europol"


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"", None, "empty file"),
        (b"\n\n  \n", None, "empty file"),
        (b"Just a line\nand another\n", 1, "no items"),
        (b"Preface text\n\nTitle\n\nSource: NATO\n\nBody\n", 1, "text before the first item"),
        (b"Title\n\nSource: NATO\n\nBody\x00\x01binary\n", 5, "binary data"),
        (b"Title\n\nSource: NATO\n\nCaf\xe9 latin-1\n", 5, "not UTF-8"),
    ],
)
def test_malformed_files_give_one_error_with_file_and_line(
    data: bytes, line: int | None, reason: str
) -> None:
    with pytest.raises(ParseError) as caught:
        parse_seed_bytes(data, "seeds/bad.txt")
    error = caught.value
    assert error.file == "seeds/bad.txt"
    assert error.line == line
    assert reason in error.reason
    assert str(error).startswith("seeds/bad.txt" + (f":{line}" if line else ""))


def test_decoding_reports_the_line_of_the_bad_byte() -> None:
    with pytest.raises(ParseError) as caught:
        decode_seed_bytes(b"ok\nok\n\xff\n", "f.txt")
    assert caught.value.line == 3
