"""Published URLs as valid URIs: what sources send may hold spaces, non-ASCII letters or
stray `%` signs, which feed validators reject ("Invalid character in a URI").

`encode_url` percent-encodes exactly what a URI may not hold as it is, leaving every valid
character (and each existing `%XX` escape) alone, so encoding twice changes nothing.
"""

from __future__ import annotations

import re
from urllib.parse import quote

_ALLOWED = "!$&'()*+,;=:@/?-._~%"
"""RFC 3986 sub-delimiters, `:@/?` and the unreserved marks (letters and digits are always
kept), and `%` for the escapes already there. `[` and `]` belong to the host alone."""
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_AUTHORITY = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*)(.*)$", re.DOTALL)
_VALID = re.compile(r"[A-Za-z0-9!$&'()*+,;=:@/?\-._~%]*(#[A-Za-z0-9!$&'()*+,;=:@/?\-._~%]*)?")


def encode_url(url: str) -> str:
    """`url` with every character a URI cannot hold percent-encoded (UTF-8), and a
    non-ASCII host name in its IDNA (punycode) form."""
    text = _LONE_PERCENT.sub("%25", url.strip())
    found = _AUTHORITY.match(text)
    authority, rest = (found.group(1), found.group(2)) if found else ("", text)
    if authority.isascii() and _VALID.fullmatch(rest):
        return authority + rest
    path, hash_sign, fragment = rest.partition("#")
    encoded = _ascii_host(authority) + quote(path, safe=_ALLOWED)
    if hash_sign:
        encoded += "#" + quote(fragment, safe=_ALLOWED)
    return encoded


def _ascii_host(authority: str) -> str:
    if authority.isascii():
        return authority
    scheme, _, netloc = authority.partition("://")
    userinfo, at, hostport = netloc.rpartition("@")
    host, colon, port = hostport.partition(":")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        host = quote(host, safe="")  # not a name IDNA can hold: still a valid URI
    return f"{scheme}://{quote(userinfo, safe=_ALLOWED)}{at}{host}{colon}{port}"
