"""Countries, their other names and adjectives, for dedup's entity matching and vetoes.

Each line: ISO code, then every spelling that names the country in English news (name,
short forms, demonym adjectives and nouns). Lookups are casefolded and accent-blind.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_COUNTRIES = """
AF Afghanistan|Afghan|Afghans
AL Albania|Albanian|Albanians
DZ Algeria|Algerian|Algerians
AD Andorra|Andorran
AO Angola|Angolan|Angolans
AR Argentina|Argentine|Argentinian|Argentinians
AM Armenia|Armenian|Armenians
AU Australia|Australian|Australians
AT Austria|Austrian|Austrians
AZ Azerbaijan|Azerbaijani|Azerbaijanis
BH Bahrain|Bahraini
BD Bangladesh|Bangladeshi
BY Belarus|Belarusian|Belarusians
BE Belgium|Belgian|Belgians
BJ Benin|Beninese
BO Bolivia|Bolivian
BA Bosnia and Herzegovina|Bosnia|Bosnian|Bosnians
BW Botswana
BR Brazil|Brazilian|Brazilians
BG Bulgaria|Bulgarian|Bulgarians
BF Burkina Faso
KH Cambodia|Cambodian|Cambodians
CM Cameroon|Cameroonian|Cameroonians
CA Canada|Canadian|Canadians
CL Chile|Chilean|Chileans
CN China|Chinese
CO Colombia|Colombian|Colombians
CD Democratic Republic of the Congo|DR Congo|DRC|Congolese
CR Costa Rica|Costa Rican
CI Côte d'Ivoire|Cote d'Ivoire|Ivory Coast|Ivorian
HR Croatia|Croatian|Croatians
CU Cuba|Cuban|Cubans
CY Cyprus|Cypriot|Cypriots
CZ Czechia|Czech Republic|Czech|Czechs
DK Denmark|Danish|Danes
DO Dominican Republic|Dominican
EC Ecuador|Ecuadorian|Ecuadorians
EG Egypt|Egyptian|Egyptians
SV El Salvador|Salvadoran
EE Estonia|Estonian|Estonians
ET Ethiopia|Ethiopian|Ethiopians
FI Finland|Finnish|Finns
FR France|French
GA Gabon|Gabonese
GE Georgia|Georgian|Georgians
DE Germany|German|Germans
GH Ghana|Ghanaian|Ghanaians
GR Greece|Greek|Greeks|Hellenic
GT Guatemala|Guatemalan
HN Honduras|Honduran
HU Hungary|Hungarian|Hungarians
IS Iceland|Icelandic|Icelanders
IN India|Indian|Indians
ID Indonesia|Indonesian|Indonesians
IR Iran|Iranian|Iranians
IQ Iraq|Iraqi|Iraqis
IE Ireland|Irish
IL Israel|Israeli|Israelis
IT Italy|Italian|Italians
JM Jamaica|Jamaican
JP Japan|Japanese
JO Jordan|Jordanian|Jordanians
KZ Kazakhstan|Kazakh|Kazakhstani
KE Kenya|Kenyan|Kenyans
XK Kosovo|Kosovar|Kosovan
KW Kuwait|Kuwaiti
KG Kyrgyzstan|Kyrgyz
LV Latvia|Latvian|Latvians
LB Lebanon|Lebanese
LY Libya|Libyan|Libyans
LI Liechtenstein
LT Lithuania|Lithuanian|Lithuanians
LU Luxembourg|Luxembourgish
MG Madagascar|Malagasy
MY Malaysia|Malaysian|Malaysians
ML Mali|Malian
MT Malta|Maltese
MR Mauritania|Mauritanian
MU Mauritius|Mauritian
MX Mexico|Mexican|Mexicans
MD Moldova|Moldovan|Moldovans
MC Monaco|Monegasque
MN Mongolia|Mongolian
ME Montenegro|Montenegrin|Montenegrins
MA Morocco|Moroccan|Moroccans
MZ Mozambique|Mozambican
MM Myanmar|Burma|Burmese
NA Namibia|Namibian
NP Nepal|Nepali|Nepalese
NL Netherlands|the Netherlands|Dutch|Holland
NZ New Zealand
NI Nicaragua|Nicaraguan
NE Niger|Nigerien
NG Nigeria|Nigerian|Nigerians
KP North Korea|DPRK|North Korean|North Koreans
MK North Macedonia|Macedonia|Macedonian|Macedonians
NO Norway|Norwegian|Norwegians
OM Oman|Omani
PK Pakistan|Pakistani|Pakistanis
PS Palestine|Palestinian|Palestinians
PA Panama|Panamanian
PY Paraguay|Paraguayan
PE Peru|Peruvian|Peruvians
PH Philippines|Filipino|Filipinos|Philippine
PL Poland|Polish|Poles
PT Portugal|Portuguese
QA Qatar|Qatari|Qataris
RO Romania|Romanian|Romanians
RU Russia|Russian Federation|Russian|Russians
RW Rwanda|Rwandan
SA Saudi Arabia|Saudi|Saudis
SN Senegal|Senegalese
RS Serbia|Serbian|Serbians|Serb|Serbs
SG Singapore|Singaporean
SK Slovakia|Slovak|Slovaks
SI Slovenia|Slovenian|Slovene|Slovenians
SO Somalia|Somali
ZA South Africa|South African|South Africans
KR South Korea|Republic of Korea|South Korean|South Koreans
SS South Sudan
ES Spain|Spanish|Spaniards
LK Sri Lanka|Sri Lankan
SD Sudan|Sudanese
SE Sweden|Swedish|Swedes
CH Switzerland|Swiss
SY Syria|Syrian|Syrians
TW Taiwan|Taiwanese
TJ Tajikistan|Tajik
TZ Tanzania|Tanzanian
TH Thailand|Thai
TN Tunisia|Tunisian|Tunisians
TR Türkiye|Turkiye|Turkey|Turkish|Turks
TM Turkmenistan|Turkmen
UG Uganda|Ugandan
UA Ukraine|Ukrainian|Ukrainians
AE United Arab Emirates|UAE|Emirati
GB United Kingdom|UK|Great Britain|Britain|British|England|Scotland|Scottish|Wales|Welsh
US United States|United States of America|USA|U.S.|US|American|Americans
UY Uruguay|Uruguayan
UZ Uzbekistan|Uzbek
VE Venezuela|Venezuelan|Venezuelans
VN Vietnam|Viet Nam|Vietnamese
YE Yemen|Yemeni
ZM Zambia|Zambian
ZW Zimbabwe|Zimbabwean
"""


@lru_cache(maxsize=262_144)
def fold(text: str) -> str:
    """Casefolded text without accents: `Erdoğan` and `Erdogan` compare equal (cached: news
    repeats its words)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    # Combining marks are all at U+0300 or above: only such runs are read character by
    # character.
    return _ABOVE_SPACING_MODIFIERS.sub(_without_marks, decomposed)


_ABOVE_SPACING_MODIFIERS = re.compile("[^\x00-\u02ff]+")


def _without_marks(run: re.Match[str]) -> str:
    return "".join(ch for ch in run.group() if not unicodedata.combining(ch))


_REGEX_CASE_TWINS = str.maketrans({"İ": "i", "ı": "i", "ſ": "s"})
"""The only characters other than ASCII letters that `re.IGNORECASE` matches with an ASCII
letter, and that `str.lower` does not turn into it ("İ" lowers to two characters)."""


def caseless(text: str) -> str:
    """`text` lowered character for character, as `re.IGNORECASE` compares it with ASCII
    letters: a case-sensitive pattern of lower-case ASCII letters and uncased characters
    matches the result at the offsets where, ignoring case, it matches `text`. A cheap test
    (`in`) on it proves that an IGNORECASE pattern cannot match, without a regex scan."""
    if text.isascii() or ("İ" not in text and "ı" not in text and "ſ" not in text):
        return text.lower()
    # `translate` costs a dictionary lookup per character: only for the rare text that needs it.
    return text.translate(_REGEX_CASE_TWINS).lower()


def _build() -> dict[tuple[str, ...], str]:
    table: dict[tuple[str, ...], str] = {}
    for line in _COUNTRIES.strip().splitlines():
        code, spellings = line.split(" ", 1)
        for spelling in spellings.split("|"):
            table[tuple(fold(spelling).split())] = code
    return table


COUNTRY_PHRASES: dict[tuple[str, ...], str] = _build()
"""Folded word tuples ("north", "macedonia") -> ISO code."""
LONGEST_COUNTRY_PHRASE = max(len(words) for words in COUNTRY_PHRASES)


def _joined() -> tuple[tuple[str, str], ...]:
    spellings: list[tuple[str, str]] = []
    for line in _COUNTRIES.strip().splitlines():
        code, names = line.split(" ", 1)
        spellings.extend((name, code) for name in names.split("|")
                         if any(word.islower() for word in name.split()[1:]))
    return tuple(spellings)


JOINED_COUNTRY_NAMES: tuple[tuple[str, str], ...] = _joined()
"""(spelling, ISO code) of the country names with a lower-case word inside ("Republic of
Korea", "Bosnia and Herzegovina"): a run of capitalized words stops at that word, so these
are looked for as they are spelled."""
