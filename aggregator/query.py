"""The topic query language: parsed into a small AST, matched against a story (pure).

    query   := term+                       every term must match (an implicit `all`)
    term    := "not" term
             | ("any" | "all") "(" term+ ")"
             | "agency:" SLUG              a story an agency reported (`agency:nato`)
             | "country:" ISO2             a story about a country (`country:ME`)
             | '"' words '"'               a phrase, its words in order
             | WORD ["*"]                  a whole word; `phish*` matches any word starting so

Words and phrases match the titles and texts of every report of a story, ignoring case and
accents. Commas between terms are allowed for readability (`any(ransomware, DDoS)`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

from aggregator.gazetteer import COUNTRY_PHRASES, fold


class QueryError(ValueError):
    """A query that does not parse: the reason and the 1-based character position."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"position {position}: {reason}")
        self.reason = reason
        self.position = position


@dataclass(frozen=True, slots=True)
class Word:
    """A whole word (folded), or a word prefix when `prefix` is set."""

    text: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words that must appear together, in order."""

    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AgencyIs:
    """The story was reported by this agency (slug)."""

    slug: str


@dataclass(frozen=True, slots=True)
class CountryIs:
    """The story is about this country (ISO 3166-1 alpha-2 code)."""

    code: str


@dataclass(frozen=True, slots=True)
class Not:
    """The term does not match."""

    term: Term


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one of the terms matches."""

    terms: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every term matches."""

    terms: tuple[Term, ...]


Term = Word | Phrase | AgencyIs | CountryIs | Not | AnyOf | AllOf

COUNTRY_CODES = frozenset(COUNTRY_PHRASES.values())
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<open>\() | (?P<close>\)) | (?P<comma>,)
      | "(?P<phrase>[^"]*)(?P<phrase_end>"?)
      | (?P<bare>[^\s(),"]+)
    )""",
    re.VERBOSE,
)
_WORD = re.compile(r"\w+")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    position: int
    """1-based character position in the query."""


def _tokens(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None or match.end() == pos:
            if query[pos:].strip():
                raise QueryError(f"unexpected {query[pos]!r}", pos + 1)
            break
        kind = match.lastgroup or ""
        if match.group("phrase") is not None:
            start = match.start("phrase")
            if not match.group("phrase_end"):
                raise QueryError("unclosed quote", start)
            tokens.append(_Token("phrase", match.group("phrase"), start))
        else:
            start = match.start(kind)
            tokens.append(_Token(kind, match.group(kind), start + 1))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, query: str) -> None:
        self._query = query
        self._tokens = _tokens(query)
        self._at = 0

    def _peek(self) -> _Token | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _end_position(self) -> int:
        return len(self._query) + 1

    def parse(self) -> Term:
        terms = self._terms(closing=False)
        if not terms:
            raise QueryError("empty query", 1)
        return terms[0] if len(terms) == 1 else AllOf(tuple(terms))

    def _terms(self, *, closing: bool) -> list[Term]:
        terms: list[Term] = []
        while True:
            token = self._peek()
            if token is None:
                if closing:
                    raise QueryError("expected ')'", self._end_position())
                return terms
            if token.kind == "close":
                if not closing:
                    raise QueryError("')' without '('", token.position)
                self._at += 1
                return terms
            if token.kind == "comma":
                self._at += 1
                continue
            terms.append(self._term())

    def _term(self) -> Term:
        token = self._peek()
        if token is None:
            raise QueryError("expected a term", self._end_position())
        self._at += 1
        if token.kind == "open":
            raise QueryError("'(' must follow any or all", token.position)
        if token.kind == "phrase":
            words = tuple(fold(w) for w in _WORD.findall(token.text))
            if not words:
                raise QueryError("empty phrase", token.position)
            return Phrase(words) if len(words) > 1 else Word(words[0])
        text = token.text
        lowered = text.casefold()
        if lowered == "not":
            return Not(self._term())
        if lowered in ("any", "all"):
            opening = self._peek()
            if opening is None or opening.kind != "open":
                raise QueryError(f"expected '(' after {text}", (
                    opening.position if opening else self._end_position()))
            self._at += 1
            inner = self._terms(closing=True)
            if not inner:
                raise QueryError(f"{text}() needs at least one term", token.position)
            return AnyOf(tuple(inner)) if lowered == "any" else AllOf(tuple(inner))
        if ":" in text:
            return self._field(token)
        return self._word(token)

    def _field(self, token: _Token) -> Term:
        name, _, value = token.text.partition(":")
        value_position = token.position + len(name) + 1
        if name.casefold() == "agency":
            slug = value.casefold()
            if not _SLUG.match(slug):
                raise QueryError(f"not an agency slug: {value!r}", value_position)
            return AgencyIs(slug)
        if name.casefold() == "country":
            code = value.upper()
            if code not in COUNTRY_CODES:
                raise QueryError(f"unknown country code {value!r} (ISO 3166 alpha-2, "
                                 "e.g. country:ME)", value_position)
            return CountryIs(code)
        raise QueryError(f"unknown field {name!r} (known: agency, country)", token.position)

    def _word(self, token: _Token) -> Term:
        prefix = token.text.endswith("*")
        words = _WORD.findall(fold(token.text.rstrip("*")))
        if not words:
            raise QueryError(f"not a word: {token.text!r}", token.position)
        if len(words) > 1:  # "co-operation", "1,006": the parts in order
            if prefix:
                raise QueryError("'*' ends a single word only", token.position)
            return Phrase(tuple(words))
        return Word(words[0], prefix)


def parse_query(query: str) -> Term:
    """The AST of a query; raises QueryError with the position of the first problem."""
    return _Parser(query).parse()


_WORD_BYTES = bytes(
    byte if byte >= 0x80 or chr(byte).isalnum() or chr(byte) == "_" else ord(" ")
    for byte in range(256)
).lower()
"""UTF-8 bytes as `_words` reads them: ASCII letters lowered, the ASCII characters `\\w`
does not match made spaces, the bytes of every other character kept."""


@dataclass(frozen=True, slots=True)
class StoryFacts:
    """What a query looks at in a story: its words, agencies and countries."""

    words_text: str
    """Every folded word of the story's titles and texts, padded and joined by spaces."""
    agencies: frozenset[str]
    countries: frozenset[str]

    @classmethod
    def of(cls, texts: Iterable[str], agencies: Iterable[str],
           countries: Iterable[str]) -> StoryFacts:
        """Facts from raw texts (folded and split here)."""
        # No word spans a line break: the texts are read as one.
        words = _words("\n".join(texts))
        return cls(f" {' '.join(words)} ", frozenset(agencies), frozenset(countries))

    @property
    def words(self) -> frozenset[str]:
        """Every folded word of the story."""
        return frozenset(self.words_text.split())


def _words(text: str) -> list[str]:
    """The `\\w+` words of a text, folded (`gazetteer.fold`), in order."""
    # A byte table lowers and splits ASCII at C speed; the text round-trips whatever it
    # holds (lone surrogates included), since only ASCII bytes change.
    spaced = text.encode("utf-8", "surrogatepass").translate(_WORD_BYTES).decode(
        "utf-8", "surrogatepass")
    words = spaced.split()
    if spaced.isascii():
        return words
    # A word with other characters is read again as the pattern reads it (a dash or a
    # quotation mark splits it) and folded: its ASCII letters are lowered already, which
    # folding would do anyway.
    result: list[str] = []
    for word in words:
        if word.isascii():
            result.append(word)
            continue
        for part in _WORD.findall(word):
            if part.isascii():
                result.append(part)
            else:
                result += _folded(part)
    return result


def _folded(word: str) -> list[str]:
    folded = fold(word)
    # Folding rarely splits a word ("ﬁ" ligatures, "ß" stays one word): split again only then.
    return [folded] if folded.isalnum() else _WORD.findall(folded)


def matches(term: Term, facts: StoryFacts) -> bool:
    """Whether a story with these facts matches the query (pure)."""
    return matcher(term)(facts)


@cache
def matcher(term: Term) -> Callable[[StoryFacts], bool]:
    """The query as a function of a story's facts (made once per query: topics are matched
    against every story)."""
    match term:
        case Word(text, prefix) if text and text.split() == [text]:
            # Words are whole and space-separated in `words_text`, padded at both ends.
            needle = f" {text}" if prefix else f" {text} "
            return lambda facts: needle in facts.words_text
        case Word(text, False):
            return lambda facts: text in facts.words
        case Word(text, True):
            return lambda facts: any(w.startswith(text) for w in facts.words)
        case Phrase(words):
            phrase = f" {' '.join(words)} "
            return lambda facts: phrase in facts.words_text
        case AgencyIs(slug):
            return lambda facts: slug in facts.agencies
        case CountryIs(code):
            return lambda facts: code in facts.countries
        case Not(inner):
            negated = matcher(inner)
            return lambda facts: not negated(facts)
        case AnyOf(terms):
            alternatives = tuple(matcher(t) for t in terms)
            return lambda facts: any(m(facts) for m in alternatives)
        case AllOf(terms):
            required = tuple(matcher(t) for t in terms)
            return lambda facts: all(m(facts) for m in required)
    raise TypeError(f"not a query term: {term!r}")
