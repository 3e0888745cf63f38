#!/usr/bin/env python3
"""Generate synthetic seed-file corpora for newswire's performance benchmarks.

The corpus imitates the bundled seeds (``seeds/*.txt``, format in DESIGN.md "Seed file
format"): each item is a title line, a blank line, ``Source: <agency>``, a blank line and body
paragraphs. Items come from the five real agencies (NATO, Europol, Eurojust, Interpol, the US
Joint Chiefs of Staff) and from synthetic national ones ("National Crime Agency 7"), each with
its own habits: NATO leads ("On Wednesday 4 December 2024, ..."), Europol summaries cut with
"…", Eurojust datelines ("The Hague, 26 November 2024" and a dash), Interpol and JCS date lines
("26 November 2024", "November 25, 2024") before the text. About 20% of items state no date.

Every item renders an *event* (an operation, a meeting, a phone call, a verdict, ...) whose
facts (countries, cities, people, operation name, numbers, date) come from a large vocabulary,
so unrelated items share little but boilerplate. Planted for dedup benchmarks:

* groups: second reports of one event: another agency's rewrite (same facts and date, new
  wording and title), a media advisory before its report, a Europol summary that is a
  "…"-cut prefix of another item's text, or an exact re-post (same agency, title and text:
  the only titles that repeat in a corpus);
* near misses: two items rendered with the same template and word choices from events that
  differ in one fact (country, person or date), which dedup must keep apart.

Partners lie within a few days of each other; items are ordered by date and split over the
files in that order. A corpus is a pure function of the arguments: one ``random.Random(seed)``
plans it and every item is rendered from its own seed drawn from that generator.

Usage::

    python benchmarks/gen_seeds.py --items 100000 --out /tmp/corpus --truth /tmp/truth.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

EN_DASH = "\u2013"
EM_DASH = "\u2014"
ELLIPSIS = "\u2026"
BULLET = "  \u2022 "
LEFT_QUOTE = "\u201c"
RIGHT_QUOTE = "\u201d"

WORDS_MEDIAN = 185
"""Median body length asked of a report; real seed text runs at about 6.8 bytes a word."""
UNDATED_SHARE = 0.25
"""Share of free items that state no date (planted pairs always do), about 20% overall."""

MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

# name|adjective|cities. Names that take an article carry it ("the Netherlands").
_COUNTRY_TABLE = """
Albania|Albanian|Tirana,Durrës,Shkodër,Vlorë
Austria|Austrian|Vienna,Graz,Linz,Salzburg,Innsbruck
Belgium|Belgian|Brussels,Antwerp,Ghent,Liège,Charleroi
Bosnia and Herzegovina|Bosnian|Sarajevo,Banja Luka,Mostar,Tuzla
Bulgaria|Bulgarian|Sofia,Plovdiv,Varna,Burgas
Croatia|Croatian|Zagreb,Split,Rijeka,Osijek
Cyprus|Cypriot|Nicosia,Limassol,Larnaca
the Czech Republic|Czech|Prague,Brno,Ostrava,Plzeň
Denmark|Danish|Copenhagen,Aarhus,Odense,Aalborg
Estonia|Estonian|Tallinn,Tartu,Narva,Pärnu
Finland|Finnish|Helsinki,Tampere,Turku,Oulu
France|French|Paris,Marseille,Lyon,Lille,Bordeaux,Nice
Georgia|Georgian|Tbilisi,Batumi,Kutaisi
Germany|German|Berlin,Hamburg,Munich,Cologne,Frankfurt,Wiesbaden,Leipzig
Greece|Greek|Athens,Thessaloniki,Patras,Heraklion
Hungary|Hungarian|Budapest,Debrecen,Szeged,Pécs
Iceland|Icelandic|Reykjavík,Akureyri
Ireland|Irish|Dublin,Cork,Limerick,Galway
Italy|Italian|Rome,Milan,Naples,Turin,Palermo,Bari,Genoa
Kosovo|Kosovan|Pristina,Prizren,Peja
Latvia|Latvian|Riga,Daugavpils,Liepāja
Lithuania|Lithuanian|Vilnius,Kaunas,Klaipėda
Luxembourg|Luxembourgish|Luxembourg City,Esch-sur-Alzette
Malta|Maltese|Valletta,Birkirkara
Moldova|Moldovan|Chișinău,Bălți
Montenegro|Montenegrin|Podgorica,Bar,Budva,Nikšić
the Netherlands|Dutch|Amsterdam,Rotterdam,The Hague,Utrecht,Eindhoven
North Macedonia|North Macedonian|Skopje,Bitola,Ohrid
Norway|Norwegian|Oslo,Bergen,Trondheim,Stavanger
Poland|Polish|Warsaw,Kraków,Gdańsk,Wrocław,Poznań,Łódź
Portugal|Portuguese|Lisbon,Porto,Faro,Braga
Romania|Romanian|Bucharest,Cluj-Napoca,Constanța,Timișoara,Iași
Serbia|Serbian|Belgrade,Novi Sad,Niš,Sremska Mitrovica
Slovakia|Slovak|Bratislava,Košice,Žilina
Slovenia|Slovenian|Ljubljana,Maribor,Koper
Spain|Spanish|Madrid,Barcelona,Valencia,Seville,Málaga,Algeciras,Bilbao
Sweden|Swedish|Stockholm,Gothenburg,Malmö,Uppsala
Switzerland|Swiss|Bern,Zurich,Geneva,Basel,Lausanne
Türkiye|Turkish|Ankara,Istanbul,Izmir,Mersin,Antalya
Ukraine|Ukrainian|Kyiv,Lviv,Odesa,Kharkiv,Dnipro
the United Kingdom|British|London,Manchester,Birmingham,Glasgow,Dover,Liverpool
Armenia|Armenian|Yerevan,Gyumri
Azerbaijan|Azerbaijani|Baku,Ganja
the United States|US|Washington,New York,Miami,Houston,Chicago,Los Angeles
Canada|Canadian|Ottawa,Toronto,Montreal,Vancouver,Halifax
Mexico|Mexican|Mexico City,Guadalajara,Monterrey,Veracruz,Tijuana
Guatemala|Guatemalan|Guatemala City,Quetzaltenango
Honduras|Honduran|Tegucigalpa,San Pedro Sula
Costa Rica|Costa Rican|San José,Limón
Panama|Panamanian|Panama City,Colón
Colombia|Colombian|Bogotá,Medellín,Cali,Cartagena,Barranquilla
Ecuador|Ecuadorian|Quito,Guayaquil,Manta
Peru|Peruvian|Lima,Callao,Arequipa,Trujillo
Brazil|Brazilian|Brasília,São Paulo,Rio de Janeiro,Santos,Recife,Fortaleza
Argentina|Argentine|Buenos Aires,Rosario,Córdoba,Mendoza
Chile|Chilean|Santiago,Valparaíso,Antofagasta
Paraguay|Paraguayan|Asunción,Ciudad del Este
Uruguay|Uruguayan|Montevideo,Punta del Este
Bolivia|Bolivian|La Paz,Santa Cruz,Cochabamba
the Dominican Republic|Dominican|Santo Domingo,Santiago de los Caballeros
Jamaica|Jamaican|Kingston,Montego Bay
Morocco|Moroccan|Rabat,Casablanca,Tangier,Marrakesh
Algeria|Algerian|Algiers,Oran,Constantine
Tunisia|Tunisian|Tunis,Sfax,Sousse
Egypt|Egyptian|Cairo,Alexandria,Port Said
Nigeria|Nigerian|Abuja,Lagos,Kano,Port Harcourt
Ghana|Ghanaian|Accra,Kumasi,Tema
Senegal|Senegalese|Dakar,Thiès,Saint-Louis
Côte d'Ivoire|Ivorian|Abidjan,Yamoussoukro,San-Pédro
Cameroon|Cameroonian|Yaoundé,Douala
Kenya|Kenyan|Nairobi,Mombasa,Kisumu
Tanzania|Tanzanian|Dodoma,Dar es Salaam,Arusha
Uganda|Ugandan|Kampala,Entebbe
Ethiopia|Ethiopian|Addis Ababa,Dire Dawa
South Africa|South African|Pretoria,Johannesburg,Cape Town,Durban
Angola|Angolan|Luanda,Lobito,Benguela
Mozambique|Mozambican|Maputo,Beira,Nampula
Zambia|Zambian|Lusaka,Ndola
Namibia|Namibian|Windhoek,Walvis Bay
Benin|Beninese|Cotonou,Porto-Novo
Rwanda|Rwandan|Kigali,Huye
Mauritania|Mauritanian|Nouakchott,Nouadhibou
Mali|Malian|Bamako,Sikasso
Jordan|Jordanian|Amman,Aqaba,Irbid
Qatar|Qatari|Doha,Al Wakrah
the United Arab Emirates|Emirati|Abu Dhabi,Dubai,Sharjah
Saudi Arabia|Saudi|Riyadh,Jeddah,Dammam
Iraq|Iraqi|Baghdad,Basra,Erbil
Lebanon|Lebanese|Beirut,Tripoli,Sidon
Kuwait|Kuwaiti|Kuwait City,Al Ahmadi
Bahrain|Bahraini|Manama,Muharraq
Oman|Omani|Muscat,Salalah,Sohar
Kazakhstan|Kazakh|Astana,Almaty,Shymkent
Uzbekistan|Uzbek|Tashkent,Samarkand,Bukhara
India|Indian|New Delhi,Mumbai,Chennai,Kolkata,Bengaluru
Pakistan|Pakistani|Islamabad,Karachi,Lahore
Bangladesh|Bangladeshi|Dhaka,Chittagong
Sri Lanka|Sri Lankan|Colombo,Kandy,Galle
Thailand|Thai|Bangkok,Chiang Mai,Pattaya,Phuket
Viet Nam|Vietnamese|Hanoi,Ho Chi Minh City,Da Nang,Hai Phong
Malaysia|Malaysian|Kuala Lumpur,Penang,Johor Bahru
Indonesia|Indonesian|Jakarta,Surabaya,Medan,Denpasar
the Philippines|Philippine|Manila,Cebu,Davao
Singapore|Singaporean|Singapore
Cambodia|Cambodian|Phnom Penh,Siem Reap,Sihanoukville
Japan|Japanese|Tokyo,Osaka,Yokohama,Fukuoka
the Republic of Korea|Korean|Seoul,Busan,Incheon
Mongolia|Mongolian|Ulaanbaatar,Darkhan
Australia|Australian|Canberra,Sydney,Melbourne,Brisbane,Perth
New Zealand|New Zealand|Wellington,Auckland,Christchurch
Fiji|Fijian|Suva,Nadi
"""

_FIRST_NAMES = """
Ana Maria Elena Sofia Laura Petra Ingrid Katarina Jana Marta Irena Lucia Clara Eva Helena
Nadia Olga Yasmin Amina Fatima Leila Aisha Mariam Grace Joy Esther Ruth Chloé Camille Léa
Inès Giulia Chiara Francesca Sara Alba Nuria Carmen Paula Beatriz Inês Mónica Zeynep Elif
Ayşe Oksana Iryna Natalia Tetiana Agnieszka Magdalena Zofia Kristina Liga Rasa Kadri Aino
Sanna Freya Astrid Sigrid Maeve Siobhan Aoife Mei Yuki Hana Priya Anjali Nimmi Thandiwe Zanele
Wanjiru Adaeze Ngozi Chiamaka Valentina Daniela Gabriela Camila Mariana Luz Rosa Lina Noor
Mark Jakov Andrii Boris Ivan Marko Luka Nikola Stefan Tomas Tomasz Piotr Jan Pavel Milan
Dragan Goran Zoran Dimitar Georgi Nikolaos Kostas Yannis Ahmet Mehmet Emre Hakan Yaşar Kemal
Omar Karim Youssef Hassan Ali Khalid Samir Tariq Jassim Faisal Ibrahim Moussa Abdoulaye Kwame
Kofi Emeka Chinedu Tunde Thabo Sipho Tendai Joseph Daniel David Michael James Robert Thomas
Patrick Sean Liam Conor Erik Lars Henrik Mikko Juha Andres Toomas Mārtiņš Darius Rokas Lukas
Felix Jonas Matthias Stefano Marco Luca Giorgio Alessandro Carlos Javier Miguel Pedro João
Rui Diego Santiago Mateo Andrés Felipe Rafael Hiroshi Kenji Takeshi Min-jun Ji-ho Arjun Rahul
Vikram Sanjay Dmitri Aleksandar Vuk Arben Besnik Agron Edon Valon Ilir Fatos Jalel Valdecy
"""

_SURNAMES = """
Kovač Horvat Novak Petrović Jovanović Nikolić Marković Popović Milatović Vuković Dimitrov
Georgiev Ivanov Petrov Stoyanov Papadopoulos Georgiou Nikolaidis Yilmaz Kaya Demir Şahin
Çelik Arslan Öztürk Kowalski Nowak Wiśniewski Wójcik Kamińska Lewandowska Zieliński Szabó
Nagy Tóth Horváth Varga Kiss Molnár Popescu Ionescu Dumitru Stan Gheorghe Rusu Munteanu
Shevchenko Bondarenko Kovalenko Tkachenko Melnyk Kravchenko Sybiha Moroz Hoxha Krasniqi Berisha
Gashi Shala Morina Kelmendi Dervishi Müller Schmidt Schneider Fischer Weber Wagner Becker
Hoffmann Schäfer Koch Richter Klein Wolf Neumann Braun Zimmermann Krüger Hartmann Lange
Dubois Martin Bernard Moreau Laurent Lefebvre Girard Fournier Mercier Rousseau Blanc Garnier
Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti
García Fernández González Rodríguez López Martínez Sánchez Pérez Gómez Díaz Moreno Álvarez
Romero Navarro Torres Ramírez Silva Santos Ferreira Pereira Oliveira Costa Rodrigues Almeida
Carvalho Sousa Janssen de Vries van Dijk Bakker Visser Smit Meijer de Boer Mulder Peeters
Maes Jacobs Willems Claes Andersen Nielsen Hansen Pedersen Johansson Lindqvist Karlsson
Nilsson Eriksson Berg Haugen Virtanen Korhonen Mäkinen Nieminen Tamm Saar Kask Bērziņš
Kalniņš Ozols Kazlauskas Petrauskas Jankauskas Murphy Kelly O'Brien Walsh Byrne Ryan O'Connor
Smith Jones Taylor Brown Williams Wilson Evans Thomas Roberts Johnson Anderson Campbell
Al Mannai Al Thani Al Harbi Al Zahrani Haddad Khoury Nasser Mansour Farouk Benali Bouzid
Haddadi El Amrani Diallo Traoré Ndiaye Diop Camara Mensah Owusu Boateng Okafor Adeyemi
Eze Balogun Mwangi Otieno Kamau Njoroge Dlamini Nkosi Mokoena Banda Phiri Moyo Tembo
Tanaka Suzuki Takahashi Watanabe Kim Lee Park Choi Nguyen Tran Pham Le Santoso Wijaya
Sharma Patel Singh Gupta Kumar Reddy Perera Fernando Silva Rahman Hossain Chowdhury Khan
Hussain Mahmoud Yusuf Ortega Castillo Vargas Mendoza Herrera Medina Rojas Urquiza Andriani
"""

_OPERATION_ADJECTIVES = """
Silver Golden Iron Crimson Azure Scarlet Amber Emerald Black White Grey Northern Southern
Eastern Western Silent Hidden Frozen Burning Broken Rising Falling Distant Swift Steady Bright
Dark Blue Red Green Copper Bronze Quiet Wild Deep High Lone Last First Open Twin Hollow
Ancient Coastal Desert Arctic Midnight Morning Evening Winter Summer Spring Autumn Storm
"""

_OPERATION_NOUNS = """
Falcon Lantern Harbour Anchor Compass Serengeti Kilimanjaro Atlas Orion Pegasus Hydra
Phoenix Trident Sentinel Horizon Meridian Tempest Glacier Cascade Canyon Delta Estuary Fjord
Lagoon Mistral Sirocco Monsoon Zephyr Aurora Comet Nebula Quasar Pulsar Eclipse Solstice
Equinox Cobalt Onyx Jasper Garnet Topaz Sapphire Obsidian Basalt Granite Quartz Marble
Cedar Cypress Juniper Willow Acacia Baobab Magnolia Lotus Orchid Thistle Heather Bramble
Lynx Jaguar Panther Cheetah Leopard Badger Otter Heron Osprey Kestrel Condor Albatross
Pelican Cormorant Marlin Barracuda Swordfish Stingray Octopus Nautilus Kraken Leviathan
Titan Argus Janus Vulcan Mercury Neptune Triton Proteus Hermes Athena Minerva Artemis
Apollo Ares Helios Selene Nyx Hyperion Chronos Prometheus Icarus Daedalus Odyssey Iliad
Sparta Troy Carthage Babylon Petra Thebes Delphi Olympus Everest Aconcagua Matterhorn
Vesuvius Etna Stromboli Danube Rhine Volga Tagus Douro Loire Seine Elbe Vistula Dnieper
Mekong Amazonas Orinoco Zambezi Limpopo Niger Congo Nile Tigris Euphrates Indus Ganges
Shield Spear Hammer Anvil Chisel Lever Pulley Keystone Bastion Citadel Rampart Watchtower
Beacon Lighthouse Signal Relay Circuit Vector Matrix Cipher Enigma Sextant Astrolabe Prism
"""

_DEFENCE_TOPICS = (
    "support for Ukraine", "security in the Western Balkans", "maritime security in the Black Sea",
    "the fight against terrorism", "defence industrial production", "cyber defence",
    "hybrid threats", "the situation in the Middle East", "arms control",
    "energy security", "the protection of critical undersea infrastructure",
    "border security", "military mobility", "air and missile defence",
    "security in the High North", "the Alliance's southern neighbourhood",
    "climate change and security", "women, peace and security", "space security",
    "countering disinformation", "stability in the Sahel", "security in the Indo-Pacific",
    "defence spending", "interoperability between armed forces", "crisis management",
    "counter-drone capabilities", "naval cooperation", "humanitarian demining",
    "defence education",
)
_CRIME_TOPICS = (
    "the fight against organised crime", "migrant smuggling routes", "the exchange of "
    "criminal intelligence", "judicial cooperation in criminal matters", "the recovery of "
    "criminal assets", "cybercrime and online fraud", "drug trafficking through major ports",
    "firearms trafficking", "the protection of victims of trafficking", "returning foreign "
    "fighters", "the security of major sporting events", "border security", "the fight against "
    "terrorism", "corruption in public procurement", "environmental crime", "the tracing of "
    "fugitives", "forensic cooperation", "the use of encrypted communications by criminals",
    "money laundering through cryptocurrencies", "child sexual exploitation online",
)

_DEFENCE_SUBJECTS = (
    "Electronic Warfare", "Maritime Security", "Counter-Drone", "Cyber Defence", "Military "
    "Medicine", "Logistics", "Air Defence", "Explosive Ordnance Disposal", "Military "
    "Engineering", "Civil Preparedness", "Intelligence Analysis", "Critical Infrastructure",
    "Training and Exercises", "Space Operations", "Standardization", "Armaments",
)
_CRIME_SUBJECTS = (
    "Financial Investigations", "Firearms Experts", "Cross-Border Crime", "Forensic Science",
    "Border Management", "Counter-Terrorism", "Environmental Crime", "Missing Persons",
    "Digital Evidence", "Victim Identification", "Asset Recovery", "Drug Precursors",
    "Migrant Smuggling", "Cybercrime", "Fugitive Investigations", "Stolen Vehicles",
)
_COMMITTEE_BODIES = (
    "Advisory Committee", "Working Group", "Expert Network", "Steering Board", "Panel",
    "Coordination Group", "Task Force", "Capability Group",
)

_INSTRUMENTS = (
    "a Working Arrangement", "a Memorandum of Understanding", "a Liaison Officer Agreement",
    "a strategic cooperation agreement", "an operational agreement", "a letter of intent",
    "a data exchange agreement", "a joint declaration on cooperation",
)

_CRIME_SKILLS = (
    "digital forensics", "financial investigations", "crime scene management", "open-source "
    "intelligence", "cryptocurrency tracing", "border checks", "maritime interdiction",
    "counter-terrorism investigations", "victim identification", "firearms tracing",
    "undercover operations", "container profiling", "document fraud detection",
    "cyber incident response", "explosives detection", "witness protection",
)
_DEFENCE_SKILLS = (
    "defence planning", "military leadership", "logistics planning", "medical evacuation",
    "cyber defence", "counter-improvised explosive devices", "air traffic control",
    "humanitarian demining", "strategic communications", "crisis management",
    "search and rescue", "military engineering", "civil-military cooperation",
)

_DEFENCE_ROLES = (
    "President", "Prime Minister", "Minister of Foreign Affairs", "Minister of Defence",
    "National Security Adviser", "Speaker of Parliament", "State Secretary for Defence",
    "Deputy Prime Minister", "Chief of Defence", "Minister of State for Defence",
)
_JUSTICE_ROLES = (
    "Minister of the Interior", "Minister of Justice", "Prosecutor General", "National Police "
    "Commissioner", "Minister of Security", "Director General of Police", "Deputy Minister of "
    "the Interior", "President of the Supreme Court",
)
_MILITARY_ROLES = (
    ("Chief of Defence", "Gen."), ("Chief of the General Staff", "Lt. Gen."),
    ("Chief of Staff of the Armed Forces", "Lt. Gen."), ("Commander of the Navy", "Vice Adm."),
    ("Chief of the Air Staff", "Air Marshal"), ("Chief of Defence Forces", "Adm."),
    ("Commander of the Land Forces", "Maj. Gen."), ("Chief of Joint Operations", "Lt. Gen."),
)
_INVESTIGATOR_ROLES = (
    "Chief Inspector", "Detective Superintendent", "Commissioner", "Chief Superintendent",
    "Police Director", "Head of Unit", "Lieutenant Colonel", "Colonel",
)
_PROSECUTOR_ROLES = (
    "Public Prosecutor", "Chief Prosecutor", "Investigating Judge", "Deputy Prosecutor General",
    "Prosecutor",
)
_SIGNATORY_ROLES = (
    "Minister of the Interior", "National Police Commissioner", "Minister of Justice",
    "Director General of Police", "Prosecutor General", "Minister of Security",
)
_CHAIR_ROLES = ("Colonel", "Brigadier General", "Commander", "Dr", "Captain", "Professor")


@dataclass(frozen=True, slots=True)
class Crime:
    """A crime area with the phrases its items use."""

    name: str
    group: str
    goods: tuple[tuple[str, int, int], ...]
    modus: tuple[str, ...]


CRIMES: tuple[Crime, ...] = (
    Crime("drug trafficking", "drug trafficking network",
          (("kilos of cocaine", 5, 900), ("tonnes of cocaine", 1, 12), ("kilos of heroin", 3, 300),
           ("tonnes of cannabis", 1, 40), ("kilos of synthetic drugs", 10, 700)),
          ("imported cocaine hidden in fruit containers through the port of {city2}",
           "used cafés and car washes in {city} as front stores for the distribution of drugs",
           "moved drugs in cars with hidden compartments from {country2} to {country}",
           "ran a laboratory for synthetic drugs in a warehouse near {city}")),
    Crime("migrant smuggling", "migrant smuggling ring",
          (("vehicles", 3, 60), ("forged travel documents", 20, 900)),
          ("charged migrants up to EUR {fee} each for the crossing from {country2} to {country}",
           "transported migrants in the cargo holds of lorries through {country2}",
           "organised sea crossings in unseaworthy boats departing from {city2}")),
    Crime("trafficking in human beings", "human trafficking network",
          (("mobile phones", 20, 400), ("forged identity documents", 10, 300)),
          ("recruited victims in {country2} with false promises of work in {city}",
           "forced victims into labour on farms and construction sites around {city}",
           "exploited victims in massage parlours in {city} and {city2}")),
    Crime("money laundering", "money laundering network",
          (("luxury vehicles", 2, 40), ("properties", 2, 60)),
          ("laundered proceeds through shell companies registered in {country2}",
           "moved cash across borders in the bodywork of vans driven from {city}",
           "used an underground banking system to transfer money to {country2}")),
    Crime("VAT fraud", "VAT fraud network",
          (("bank accounts", 10, 400), ("properties", 2, 30)),
          ("traded electronic goods through a chain of missing traders in {country} and "
           "{country2}", "issued fake invoices for fuel deliveries between {city} and {city2}")),
    Crime("online investment fraud", "investment fraud network",
          (("computers", 10, 400), ("servers", 3, 80)),
          ("ran call centres in {city2} that lured victims into fake cryptocurrency investments",
           "used fake trading platforms to defraud victims in {country} and {country2}")),
    Crime("ransomware attacks", "ransomware group",
          (("servers", 5, 200), ("cryptocurrency wallets", 3, 90)),
          ("encrypted the networks of hospitals and municipalities in {country}",
           "rented out its malware to affiliates who attacked companies in {country2}")),
    Crime("firearms trafficking", "firearms trafficking network",
          (("firearms", 10, 900), ("rounds of ammunition", 500, 90000)),
          ("converted alarm pistols into live-firing weapons in a workshop near {city}",
           "smuggled weapon kits bought in {country2} across the border in private cars")),
    Crime("cigarette smuggling", "cigarette smuggling network",
          (("million cigarettes", 1, 90), ("tonnes of raw tobacco", 2, 200)),
          ("ran an illegal cigarette factory in an industrial zone outside {city}",
           "shipped counterfeit cigarettes from {country2} declared as furniture")),
    Crime("environmental crime", "waste trafficking network",
          (("tonnes of waste", 50, 9000), ("lorries", 3, 50)),
          ("dumped hazardous waste from {country2} in illegal landfills near {city}",
           "exported scrap electronics to {country2} disguised as second-hand goods")),
    Crime("wildlife trafficking", "wildlife trafficking network",
          (("kilos of ivory", 10, 800), ("live animals", 5, 400),
           ("kilos of pangolin scales", 50, 2000)),
          ("smuggled protected species from {country2} in suitcases through {city2} airport",
           "sold endangered birds and reptiles through closed online groups")),
    Crime("vehicle crime", "car theft ring",
          (("stolen vehicles", 10, 500), ("engines", 20, 300)),
          ("stole high-end cars in {country} and shipped them to {country2} in containers",
           "dismantled stolen vehicles in garages near {city} to sell the parts")),
    Crime("counterfeit medicines", "counterfeit medicines network",
          (("million tablets", 1, 40), ("kilos of active ingredients", 10, 800)),
          ("sold counterfeit medicines through websites hosted in {country2}",
           "produced fake slimming pills in a clandestine laboratory in {city}")),
    Crime("organised property crime", "burglary gang",
          (("watches and jewels", 20, 600), ("vehicles", 2, 30)),
          ("carried out burglaries in wealthy neighbourhoods of {city} and {city2}",
           "targeted cash machines across {country} with explosives")),
    Crime("corruption", "corruption network",
          (("bank accounts", 5, 90), ("properties", 2, 25)),
          ("paid bribes to officials in {city} to win public contracts",
           "bribed customs officers at the port of {city2} to let containers through")),
)


@dataclass(frozen=True, slots=True)
class Country:
    """A country, its adjective and some of its cities."""

    name: str
    adjective: str
    cities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Person:
    """A named person, the role an item gives them ("Minister of Defence") and any rank."""

    first: str
    last: str
    role: str
    rank: str = ""

    @property
    def name(self) -> str:
        """The name as written in full ("Lt. Gen. Jassim Al Mannai")."""
        return f"{self.rank} {self.first} {self.last}".lstrip()

    @property
    def short(self) -> str:
        """The name as written the second time ("Lt. Gen. Al Mannai", "Kovač")."""
        return f"{self.rank} {self.last}".lstrip()


@dataclass(frozen=True, slots=True)
class Agency:
    """A publishing agency: its name in ``Source:`` lines, its voice and what it reports."""

    name: str
    short: str
    style: str
    kinds: tuple[str, ...]
    head: str
    hq: str
    dateline: str
    spokesperson: Person
    handle: str
    home: Country | None
    side: str

    @property
    def military(self) -> bool:
        """Whether the agency speaks for armed forces rather than police or justice."""
        return self.style in ("nato", "jcs", "defence")


@dataclass(frozen=True, slots=True)
class Event:
    """The facts of one story; every report of it renders the same facts."""

    kind: str
    day: date
    span: int
    country: Country
    city: str
    city3: str
    partners: tuple[Country, ...]
    city2: str
    person: Person
    person2: Person
    host: Agency
    venue: str
    operation: str
    crime: Crime
    goods: int
    quantity: int
    arrests: int
    searches: int
    victims: int
    officers: int
    months: int
    cash: int
    amount: int
    years: int
    nth: int
    topics: tuple[str, str]
    committee: str
    instrument: str
    skill: str


class Vocabulary:
    """Places, names and word lists, parsed once."""

    def __init__(self) -> None:
        self.countries: tuple[Country, ...] = tuple(_parse_countries(_COUNTRY_TABLE))
        self.first_names: tuple[str, ...] = tuple(_FIRST_NAMES.split())
        self.surnames: tuple[str, ...] = tuple(_parse_surnames(_SURNAMES))
        self.op_adjectives: tuple[str, ...] = tuple(_OPERATION_ADJECTIVES.split())
        self.op_nouns: tuple[str, ...] = tuple(_OPERATION_NOUNS.split())

    def person(self, rng: random.Random, role: str, rank: str = "") -> Person:
        """A random person with `role` (and `rank`)."""
        return Person(rng.choice(self.first_names), rng.choice(self.surnames), role, rank)

    def operation(self, rng: random.Random) -> str:
        """A random operation name ("Operation Silver Falcon")."""
        if rng.random() < 0.15:
            return f"Operation {rng.choice(self.op_nouns)}"
        return f"Operation {rng.choice(self.op_adjectives)} {rng.choice(self.op_nouns)}"

    def country(self, rng: random.Random, *, other_than: Sequence[Country] = ()) -> Country:
        """A random country not in `other_than`."""
        while True:
            country = rng.choice(self.countries)
            if country not in other_than:
                return country


def _parse_countries(table: str) -> Iterator[Country]:
    for line in table.strip().splitlines():
        name, adjective, cities = line.split("|")
        yield Country(name, adjective, tuple(cities.split(",")))


def _parse_surnames(text: str) -> Iterator[str]:
    # Multi-word surnames ("de Vries", "Al Mannai") are written joined by their particle.
    particles = {"de", "van", "Al", "El", "O"}
    words = text.split()
    i = 0
    while i < len(words):
        if words[i] in particles and i + 1 < len(words):
            yield f"{words[i]} {words[i + 1]}"
            i += 2
        else:
            yield words[i]
            i += 1


# --------------------------------------------------------------------------------------------
# Agencies
# --------------------------------------------------------------------------------------------

_CRIME_KINDS = ("operation", "operation", "operation", "notice", "verdict", "training")
_DEFENCE_KINDS = ("meeting", "meeting", "call", "conference", "training")

# Synthetic agency types: (name, style, kinds, the role of its head).
_SYNTHETIC_TYPES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("National Crime Agency", "police", _CRIME_KINDS, "Director General of Police"),
    ("Border Police Directorate", "police", ("operation", "operation", "notice", "training"),
     "Chief of the Border Police"),
    ("Federal Criminal Police Office", "police", _CRIME_KINDS, "Criminal Police Commissioner"),
    ("Customs Enforcement Service", "police", ("operation", "operation", "verdict"),
     "Director General of Customs"),
    ("Public Prosecution Service", "prosecution", ("verdict", "verdict", "operation"),
     "Prosecutor General"),
    ("Defence Staff Press Office", "defence", _DEFENCE_KINDS, "Chief of Defence"),
    ("Financial Intelligence Unit", "police", ("operation", "verdict", "agreement"),
     "Head of Financial Intelligence"),
    ("Cybercrime Centre", "police", ("operation", "operation", "training", "agreement"),
     "Head of the Cybercrime Centre"),
    ("Coast Guard Command", "defence", ("operation", "conference", "training", "meeting"),
     "Commandant of the Coast Guard"),
    ("Anti-Corruption Bureau", "prosecution", ("verdict", "operation", "agreement"),
     "Anti-Corruption Commissioner"),
    ("Gendarmerie Command", "police", _CRIME_KINDS, "Commander of the Gendarmerie"),
    ("Ministry of Defence", "defence", _DEFENCE_KINDS, "Minister of Defence"),
    ("Counter-Terrorism Unit", "police", ("operation", "notice", "conference"),
     "Counter-Terrorism Coordinator"),
    ("Maritime Security Centre", "defence", ("conference", "operation", "meeting", "training"),
     "Director of Maritime Security"),
)

_SPOKES_ROLES = ("spokesperson", "press officer", "head of communications")


def build_agencies(count: int, vocab: Vocabulary, rng: random.Random) -> list[Agency]:
    """The five real agencies (in seed order) followed by synthetic ones, `count` in all."""
    real = [
        Agency("NATO", "NATO", "nato", ("meeting", "meeting", "conference", "training", "call"),
               "NATO Secretary General", "NATO Headquarters in Brussels", "Brussels",
               vocab.person(rng, "NATO spokesperson"), "NATOPress", None, "NATO"),
        Agency("Europol", "Europol", "europol",
               ("operation", "operation", "operation", "agreement", "training"),
               "Europol's Executive Director", "Europol's headquarters in The Hague",
               "The Hague", vocab.person(rng, "Europol spokesperson"), "Europol", None,
               "Europol"),
        Agency("Eurojust", "Eurojust", "eurojust", ("operation", "operation", "verdict",
               "agreement"), "the President of Eurojust", "Eurojust in The Hague", "The Hague",
               vocab.person(rng, "National Member at Eurojust"), "Eurojust", None, "Eurojust"),
        Agency("Interpol (news and events)", "INTERPOL", "interpol",
               ("operation", "operation", "notice", "agreement", "training", "conference"),
               "INTERPOL's Secretary General", "the INTERPOL General Secretariat in Lyon",
               "LYON, France", vocab.person(rng, "INTERPOL's Director of Police Services"),
               "INTERPOL_HQ", None, "INTERPOL"),
        Agency("US Defense Joint Chiefs of Staff", "the Joint Staff", "jcs",
               ("call", "call", "meeting", "conference"),
               "the Chairman of the Joint Chiefs of Staff", "the Pentagon", "WASHINGTON, D.C.",
               vocab.person(rng, "Joint Staff Spokesperson", "Navy Capt."), "thejointstaff",
               None, "the United States"),
    ]
    agencies = real[:count]
    for index in range(count - len(agencies)):
        kind, style, kinds, head = _SYNTHETIC_TYPES[index % len(_SYNTHETIC_TYPES)]
        name = f"{kind} {index + 1}"
        home = vocab.country(rng)
        city = home.cities[0]
        agencies.append(Agency(
            name, f"the {name}", style, kinds, f"the {home.adjective} {head}",
            f"the headquarters of the {name} in {city}", city,
            vocab.person(rng, f"{rng.choice(_SPOKES_ROLES)} of the {name}"),
            re.sub(r"\W", "", name.title()), home, home.name,
        ))
    return agencies


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


def make_event(kind: str, day: date, host: Agency, vocab: Vocabulary,
               rng: random.Random) -> Event:
    """A new event of `kind` on `day`, hosted or reported first by `host`."""
    # A national agency mostly reports on its own country, and meets foreign counterparts.
    if kind in ("meeting", "call", "agreement") or host.home is None or rng.random() < 0.25:
        country = vocab.country(rng, other_than=[host.home] if host.home else [])
    else:
        country = host.home
    partners: list[Country] = []
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4, 6))):
        partners.append(vocab.country(rng, other_than=[country, *partners]))
    crime = rng.choice(CRIMES)
    goods = rng.randrange(len(crime.goods))
    _, low, high = crime.goods[goods]
    arrests = int(min(1200, max(2, rng.lognormvariate(math.log(18), 1.0))))
    topic, topic2 = rng.sample(_DEFENCE_TOPICS if host.military else _CRIME_TOPICS, 2)
    return Event(
        kind=kind, day=day, span=rng.choice((2, 2, 3, 3, 4)),
        country=country, city=rng.choice(country.cities), city3=rng.choice(country.cities),
        partners=tuple(partners),
        city2=rng.choice(partners[0].cities),
        person=_event_person(kind, host, vocab, rng),
        person2=_second_person(kind, host, vocab, rng),
        host=host, venue=_venue(kind, host, country, rng), operation=vocab.operation(rng),
        crime=crime, goods=goods, quantity=rng.randint(low, high), arrests=arrests,
        searches=arrests + rng.randint(0, arrests * 2 + 5), victims=rng.randint(5, 4000),
        officers=rng.choice((40, 60, 80, 120, 150, 200, 250, 300, 400, 600, 800, 1200)),
        months=rng.randint(3, 36), cash=rng.randint(8, 950) * 1000,
        amount=rng.randint(2, 480), years=rng.randint(2, 18), nth=rng.randint(12, 140),
        topics=(topic, topic2),
        committee=_committee(host, rng), instrument=rng.choice(_INSTRUMENTS),
        skill=rng.choice(_DEFENCE_SKILLS if host.military else _CRIME_SKILLS),
    )


def _committee(host: Agency, rng: random.Random) -> str:
    owner = host.home.adjective if host.home is not None else host.short.removeprefix("the ")
    subject = rng.choice(_DEFENCE_SUBJECTS if host.military else _CRIME_SUBJECTS)
    return f"{owner} {subject} {rng.choice(_COMMITTEE_BODIES)}"


def _event_person(kind: str, host: Agency, vocab: Vocabulary, rng: random.Random) -> Person:
    if kind == "meeting":
        return vocab.person(rng, rng.choice(_DEFENCE_ROLES if host.military else _JUSTICE_ROLES))
    if kind == "call":
        role, rank = rng.choice(_MILITARY_ROLES)
        return vocab.person(rng, role, rank)
    if kind == "agreement":
        return vocab.person(rng, rng.choice(_SIGNATORY_ROLES))
    if kind == "conference":
        return vocab.person(rng, rng.choice(_CHAIR_ROLES))
    if kind in ("verdict", "notice"):
        return vocab.person(rng, "suspect")
    if host.military:
        return vocab.person(rng, rng.choice(_CHAIR_ROLES[:3]))
    return vocab.person(rng, rng.choice(_INVESTIGATOR_ROLES))


def _second_person(kind: str, host: Agency, vocab: Vocabulary, rng: random.Random) -> Person:
    if kind in ("operation", "verdict", "notice"):
        return vocab.person(rng, rng.choice(_PROSECUTOR_ROLES))
    return vocab.person(rng, rng.choice(_DEFENCE_ROLES if host.military else _JUSTICE_ROLES))


def _venue(kind: str, host: Agency, country: Country, rng: random.Random) -> str:
    if kind in ("meeting", "agreement", "conference") and rng.random() < 0.5:
        return f"at {host.hq}"
    return f"in {rng.choice(country.cities)}"


def mutate_event(event: Event, vocab: Vocabulary, rng: random.Random, first: date,
                 last: date) -> Event:
    """A near miss of `event`: the same story shape with another country, person or date.

    A new date lies 1 to 5 days away and inside [first, last]; if none does, the country
    changes instead.
    """
    change = rng.choice(("country", "person", "date"))
    if change == "date":
        shift = timedelta(days=rng.randint(1, 5))
        days = [d for d in (event.day + shift, event.day - shift) if first <= d <= last]
        if days:
            return replace(event, day=rng.choice(days))
        change = "country"
    if change == "person":
        return replace(event, person=_renamed(event.person, vocab, rng))
    taken = [event.country, *event.partners, *([event.host.home] if event.host.home else [])]
    country = vocab.country(rng, other_than=taken)
    person = event.person
    if event.kind in ("meeting", "call", "agreement"):
        person = _renamed(person, vocab, rng)
    venue = f"in {rng.choice(country.cities)}" if event.venue.startswith("in ") else event.venue
    return replace(event, country=country, city=rng.choice(country.cities),
                   city3=rng.choice(country.cities), person=person, venue=venue)


def _renamed(person: Person, vocab: Vocabulary, rng: random.Random) -> Person:
    """Someone else in the same role: another first name and surname."""
    while True:
        other = vocab.person(rng, person.role, person.rank)
        if other.first != person.first and other.last != person.last:
            return other


# --------------------------------------------------------------------------------------------
# Text templates
# --------------------------------------------------------------------------------------------

_TITLES: dict[str, tuple[str, ...]] = {
    "operation": (
        "{group_cap} dismantled in {country}: {arrests} arrests",
        "{op}: {arrests} arrested in crackdown on {crime} across {n_countries} countries",
        "{crime_cap} network tackled in {country} and {country2}",
        "{quantity} {goods} seized as {adj} police break up {a_group}",
        "Police in {city} arrest {arrests} suspected members of {a_group}",
        "{adj} and {adj2} authorities take down {a_group}",
        "Results of {op}: {arrests} arrests and {cash} seized",
        "Cross-border action against {crime} leads to {arrests} arrests in {country}",
        "{op} hits {crime} networks in {country} and {others}",
        "Joint investigation team dismantles {group} operating from {city}",
        "Action day in {country}: {searches} searches against suspected {group}",
        "{arrests} suspects detained in {city} over {crime}",
        "Crackdown on {crime}: {op} ends with {arrests} arrests",
        "{group_cap} behind {crime} in {country} taken down",
        "{adj} investigators seize {quantity} {goods} in {op}",
    ),
    "meeting": (
        "{host_head_cap} meets the {person_role} of {country}",
        "{host_head_cap} discusses {topic} with the {person_role} of {country}",
        "{host_short_cap} and {country} deepen cooperation on {topic}",
        "{adj} {person_role} visits {host_short} for talks on {topic}",
        "{host_head_cap} and {adj} {person_role} {person_last} address {topic}",
        "{country} and {host_short} reaffirm partnership during visit of {person_name}",
        "{host_head_cap} welcomes the {person_role} of {country}",
        "Talks in {meeting_city} focus on {topic} and {topic2}",
    ),
    "call": (
        "Readout of {host_head}'s Phone Call with {country_possessive} {person_role} "
        "{person_name}",
        "Readout of {host_head}'s Call with {adj} {person_role} {person_last}",
        "{host_head_cap} speaks with {adj} counterpart {person_name}",
        "Phone call with {country_possessive} {person_role} on {topic}",
    ),
    "conference": (
        "The {committee} convenes in {meeting_city}",
        "{committee} holds {nth} plenary meeting",
        "Experts meet in {meeting_city} for the {nth} {committee} session",
        "{committee} discusses {topic}",
        "{n_countries} countries join {committee} meeting on {topic}",
    ),
    "agreement": (
        "{country} and {host_short} sign {instrument_bare}",
        "{host_short_cap} and {country} strengthen cooperation with {instrument_bare}",
        "New {instrument_bare} between {country} and {host_short} on {topic}",
        "{country} signs {instrument_bare} with {host_short}",
    ),
    "verdict": (
        "Court in {city} sentences members of {a_group}",
        "{person_name} sentenced to {years} years for {crime}",
        "Leader of {crime} ring jailed for {years} years in {country}",
        "Prison terms of up to {years} years for {group} in {country}",
        "{adj} court convicts {arrests} members of {a_group}",
        "Convictions in {country} after {op} against {crime}",
    ),
    "notice": (
        "Fugitive wanted by {country} for {crime} arrested in {country2}",
        "{adj} fugitive {person_name} located in {city2}",
        "Suspect in {crime} case arrested in {city2} after {years} years on the run",
        "International alert leads to arrest of {person_name} in {country2}",
        "Most wanted {crime} suspect caught in {country2}",
    ),
    "training": (
        "{host_short_cap} trains {officers} officers from {n_countries} countries in {skill}",
        "{country} hosts {host_short} course on {skill}",
        "Training in {city} boosts {skill} skills of {adj} officers",
        "{officers} officers complete {skill} course in {city}",
        "{host_short_cap} and {country} step up cooperation on {skill}",
    ),
}

_LEADS: dict[str, tuple[str, ...]] = {
    "operation": (
        "law enforcement authorities from {countries} have dismantled {a_group}{on_date}, "
        "arresting {arrests} suspects and seizing {quantity} {goods}.",
        "police officers in {city} arrested {arrests} suspected members of {a_group}{on_date} "
        "during {op}, a {months}-month investigation into {crime} in {country} and {country2}.",
        "{op}, an international investigation into {crime} led by {country}, reached its "
        "action day{on_date} with {searches} searches and {arrests} arrests.",
        "in a coordinated action{on_date}, investigators from {countries} took down {a_group} "
        "that {modus}.",
        "the {adj} authorities detained {arrests} people{on_date} suspected of belonging to "
        "{a_group} that {modus}.",
    ),
    "meeting": (
        "{host_head} met with {the_person}{on_date} {venue}.",
        "{the_person} visited {host_hq}{on_date} for talks with {host_head} on {topic}.",
        "{host_head} and {the_person} discussed {topic} and {topic2} {venue}{on_date}.",
        "{host_head} welcomed {the_person}{on_date} {venue} to discuss {topic}.",
    ),
    "call": (
        "{host_head} spoke with {the_person}{on_date} by phone.",
        "{host_head} held a phone call{on_date} with {the_person} to discuss {topic}.",
        "{host_head} and {the_person} spoke by phone{on_date} about {topic}.",
    ),
    "conference": (
        "the {committee} held its {nth} plenary meeting {venue}{on_date}, chaired by "
        "{person}.",
        "experts from {n_countries} countries gathered {venue}{on_date} for the {nth} meeting "
        "of the {committee}.",
        "the {committee} met {venue}{on_date} to discuss {topic} under the chairmanship of "
        "{person}.",
    ),
    "agreement": (
        "{country} and {host_short} signed {instrument}{on_date} {venue}.",
        "{the_signatory} and {host_head} signed {instrument}{on_date} {venue}, opening the "
        "way to closer cooperation on {topic}.",
        "{host_short} and the authorities of {country} concluded {instrument}{on_date}.",
    ),
    "verdict": (
        "a court in {city} sentenced members of {a_group}{on_date} to prison terms of up to "
        "{years} years for {crime}.",
        "{person_name}, the alleged leader of {a_group}, was sentenced{on_date} by the court "
        "in {city} to {years} years in prison.",
        "the court in {city} convicted {arrests} members of {a_group}{on_date}, following "
        "{op}, an investigation by the {adj} and {adj2} authorities.",
    ),
    "notice": (
        "{person_name}, a fugitive wanted by {country} for {crime}, was arrested in {city2}"
        "{on_date} after {years} years on the run.",
        "police in {country2} located and arrested {person_name}{on_date}, a suspect wanted by "
        "{country} for {crime}.",
        "an international alert led to the arrest in {city2}{on_date} of {person_name}, who is "
        "wanted by the {adj} authorities for {crime}.",
    ),
    "training": (
        "{host_short} trained {officers} officers from {countries} in {skill} during a course "
        "in {city}{on_date}.",
        "{officers} officers from {n_countries} countries completed a course on {skill} in "
        "{city}{on_date}, organised by {host_short}.",
        "a {span}-day training course on {skill} for officers from {countries} ended in {city}"
        "{on_date}.",
    ),
}

_DETAILS: dict[str, tuple[str, ...]] = {
    "operation": (
        "The investigation began {months} months ago, after {adj} officers noticed an unusual "
        "pattern of shipments arriving in {city}.",
        "The network {modus}.",
        "Investigators believe that the suspects {modus}.",
        "During the action day, close to {officers} police officers were deployed in {country} "
        "and {country2}.",
        "Officers carried out {searches} searches and seized {quantity} {goods}, several "
        "vehicles, weapons and {cash} in cash.",
        "Among the arrested suspects are the alleged ringleaders, couriers and street dealers.",
        "The criminal proceeds are estimated at {amount_phrase}.",
        "The {adj} part of the network operated from {city}, while its logistics ran through "
        "{city2}.",
        "Assets worth {amount_phrase} were frozen, including real estate, luxury cars and bank "
        "accounts.",
        "Investigations into the network were initiated in {country2}, showing links between "
        "the {n_countries} countries involved in the operation.",
        "A joint investigation team was set up between {country} and {country2} to coordinate "
        "the cross-border work.",
        "{person}, who led the investigation in {city}, said that the suspects had used "
        "encrypted phones to stay out of sight.",
        "Further arrests are expected as analysis of the seized devices continues.",
        "The suspects face charges of {crime}, participation in a criminal organisation and "
        "money laundering.",
        "{victims} victims have been identified so far.",
        "The seizures in {city2} alone amounted to {quantity} {goods}.",
        "{person2} in {city} is leading the prosecution of the suspects.",
        "The operation was the result of {months} months of intelligence sharing between "
        "{countries}.",
    ),
    "meeting": (
        "{host_head_cap} thanked {country} for its contributions to missions and operations "
        "and for its commitment to {topic}.",
        "They discussed the importance of {topic} and of stepping up cooperation on {topic2}.",
        "The {person_role} briefed {host_head} on the security situation in {country} and its "
        "region.",
        "Both sides agreed to deepen cooperation in {topic2} over the coming months.",
        "{host_head_cap} noted that {country} had increased its defence spending and invested "
        "in modern capabilities.",
        "During the visit, {person_last} also met senior officials {venue}.",
        "The talks also covered preparations for the next summit and the situation along "
        "{country_possessive} borders.",
        "{host_head_cap} praised the {adj} armed forces for their professionalism and their "
        "role in multinational exercises.",
        "Earlier in the day, the {person_role} laid a wreath at a memorial in {city}.",
        "The two delegations also exchanged views on {topic2}.",
    ),
    "call": (
        "The leaders discussed {topic} and opportunities to enhance interoperability between "
        "their armed forces.",
        "They also exchanged views regarding {topic2}.",
        "{host_head_cap} congratulated {person_short} on the recent appointment.",
        "The two leaders reaffirmed the strong partnership between {host_side} and {country}.",
        "They agreed to stay in close contact in the coming weeks.",
        "The call followed a series of exercises held near {city} earlier this year.",
    ),
    "conference": (
        "Speakers emphasised the importance of {topic} and made proposals on the governance "
        "and doctrine of the field.",
        "Members shared their national perspectives and agreed to develop these proposals "
        "further.",
        "Discussions focused on a new mechanism for information exchange on {topic2}.",
        "Participants shared lessons learnt from national and multinational exercises.",
        "The {committee} brings together experts from {n_countries} countries and several "
        "international organisations.",
        "The next meeting is scheduled to be held in {city2}.",
        "{person} presided over the meeting and presented the work programme for the coming "
        "year.",
    ),
    "agreement": (
        "The signature puts into practice the cooperation between {country} and {host_short}, "
        "which has developed steadily over recent years.",
        "It will allow {country} to exchange sensitive information securely with {host_short} "
        "and its partners.",
        "{the_signatory} said the agreement would help the {adj} authorities fight {crime}.",
        "A liaison officer from {country} will be posted to {host_hq}.",
        "The instrument also covers training and joint analysis on {topic}.",
    ),
    "verdict": (
        "The court found that the group {modus}.",
        "The defendants were also ordered to pay back {amount_phrase} in criminal proceeds.",
        "{person2} presented evidence gathered during {op} in {country} and {country2}.",
        "The convictions follow the arrest of {arrests} suspects during an action day in "
        "{city}.",
        "Several defendants received suspended sentences in exchange for their cooperation.",
        "The court ordered the confiscation of properties, vehicles and {cash} in cash.",
        "The judgment can still be appealed.",
    ),
    "notice": (
        "{person_name} had been the subject of an international alert issued at the request of "
        "{country}.",
        "The suspect is accused of leading {a_group} that {modus}.",
        "The suspect was identified through a fingerprint check at a border crossing near "
        "{city2}.",
        "Extradition proceedings to {country} are under way.",
        "{person2} in {city} thanked the {adj2} police for their swift action.",
        "The arrest is the result of close cooperation between the police of {country} and "
        "{country2}.",
    ),
    "training": (
        "The course covered {skill}, {skill2} and the use of international databases.",
        "Trainers from {country2} shared practical cases from recent operations.",
        "The participants worked through a simulated scenario over {span} days.",
        "The training was funded by {country2} and the European Union.",
        "A follow-up course is planned in {city2} next year.",
        "{person} directed the course and presented the certificates.",
    ),
}

# Sentences assembled from four parts, so long bodies do not repeat each other word for word.
_GENERIC: dict[str, tuple[tuple[str, ...], ...]] = {
    "crime": (
        ("Investigators in {city}", "The {adj} authorities", "Officers from {country2}",
         "Analysts at {agency_short}", "Prosecutors in {city2}", "The joint investigation team",
         "Financial investigators", "Specialists from {n_countries} countries",
         "Liaison officers based in {city3}", "Customs officers at the port of {city2}",
         "A task force in {city3}", "Cyber specialists from {country2}",
         "The regional police of {city3}", "Border guards near {city2}"),
        ("traced", "examined", "documented", "mapped", "cross-checked", "reviewed", "followed",
         "identified", "secured", "analysed", "uncovered"),
        ("payments of more than {amount_phrase} routed through {country2}",
         "the movements of the suspects between {city} and {city2}",
         "{victims} reports filed by victims in {country}",
         "shipping records from the port of {city2}",
         "encrypted messages exchanged by the leaders of the network",
         "the network's couriers and safe houses in {city}",
         "bank accounts opened under false names in {country2}",
         "the links between the suspects and other groups active in {country}",
         "rented storage units on the outskirts of {city3}",
         "the use of front companies in {city3} and {city2}",
         "travel records of the main suspects to {country2}",
         "cash deposits made in small amounts across {country}",
         "a network of straw men who registered vehicles in {city3}"),
        ("over a period of {months} months", "with the support of {agency_short}",
         "before the action day", "in close cooperation with their {adj2} colleagues",
         "as part of a wider strategy against {crime}", "using data from seized phones",
         "in the weeks before the arrests", "under the supervision of {person2}",
         "with help from the authorities in {country2}", "during {op}",
         "long before the first arrests in {city3}"),
    ),
    "defence": (
        ("Officials in {city}", "The {adj} delegation", "Representatives of {country}",
         "Military planners", "Senior officers from {n_countries} countries",
         "Experts at {agency_short}", "Staff officers in {city2}", "The two delegations",
         "Commanders based in {city3}", "Defence advisers from {country2}",
         "Parliamentarians from {country}"),
        ("reviewed", "discussed", "assessed", "outlined", "presented", "examined", "agreed on",
         "welcomed", "took stock of"),
        ("plans to strengthen {topic}", "progress made on {topic2}",
         "the lessons of recent exercises near {city2}",
         "the needs of the armed forces of {country}",
         "a roadmap for closer cooperation with {country2}",
         "options to increase the readiness of forces in the region",
         "the protection of ports and pipelines around {city3}",
         "the next steps in the reform of defence institutions in {country}",
         "the training of {adj} units at the centre in {city3}",
         "the contribution of {country} to missions abroad",
         "joint procurement of ammunition and spare parts"),
        ("over the coming months", "with the support of {agency_short}",
         "ahead of the next ministerial meeting", "in close coordination with {adj2} partners",
         "in line with commitments made at the last summit", "during a working session",
         "as part of long-term planning", "with a view to the exercises planned for next year",
         "at a meeting in {city3}", "together with experts from {country2}"),
    ),
}

_QUOTES: dict[str, tuple[str, ...]] = {
    "crime": (
        "{op} shows what we can achieve when {n_countries} countries share information in "
        "real time.",
        "Criminal networks work across borders, and so must we.",
        "The arrests in {city} will save countless potential victims from real harm.",
        "We will continue to follow the money until the profits of {crime} are taken away.",
        "This is a clear message to those who think {crime} pays.",
        "I thank our colleagues in {country2} for months of patient and determined work.",
        "Behind every seizure of {goods} there are lives damaged by this trade.",
        "No network is too complex to be taken down when partners trust each other.",
    ),
    "defence": (
        "{country} is a valued partner and a strong contributor to our shared security.",
        "We must keep working together on {topic}, because none of us can face these "
        "challenges alone.",
        "Today's discussions in {meeting_city} make our cooperation stronger.",
        "Security does not come for free, and we are grateful for {country_possessive} "
        "commitment.",
        "Our partnership on {topic2} has never been more important.",
        "We have a duty to protect our nations, our people and our values.",
    ),
}

_HEADINGS: dict[str, tuple[str, ...]] = {
    "crime": ("Results of {op}", "National case studies", "Background", "How the network "
              "operated", "International cooperation", "Assets seized", "Next steps",
              "The investigation"),
    "defence": ("Background", "Key outcomes", "Next steps", "About the {committee}",
                "Programme", "Media coverage"),
}

# Media advisories by event kind: (lead, titles, programme line).
_ADVISORIES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "meeting": (
        "{when}{host_head} will meet with {the_person} {venue}.",
        ("Media advisory: {host_head_cap} to meet the {person_role} of {country}",
         "{host_head_cap} meets the {person_role} of {country} on {weekday}",
         "{host_head_cap} to welcome {adj} {person_role} {person_last}"),
        "Remarks by {host_head} and the {person_role} of {country}",
    ),
    "conference": (
        "{when}the {committee} will open its {nth} plenary meeting {venue}.",
        ("Media advisory: {committee} to convene in {meeting_city}",
         "{committee} to meet in {meeting_city}"),
        "Opening remarks by {person}",
    ),
    "agreement": (
        "{when}{host_short} and {country} will sign {instrument} {venue}.",
        ("Media advisory: {country} and {host_short} to sign {instrument_bare}",
         "Signing ceremony: {country} and {host_short}"),
        "Signing ceremony and statements to the press",
    ),
    "operation": (
        "{when}{host_short} will hold a press conference in {city} on the results of {op}, an "
        "investigation into {crime}.",
        ("Media advisory: press conference on {op}",
         "Press conference on the results of {op} in {city}"),
        "Press conference on {op} with {person2}",
    ),
}

_AUTHORITIES = (
    "Public Prosecutor's Office {city}", "National Police", "Criminal Police Directorate",
    "Ministry of the Interior", "Customs Administration", "Financial Crime Unit",
    "Organised Crime Prosecution Office", "Border Police",
)

def _domain(event: Event) -> str:
    """Which generic sentences, quotes and headings suit the event: "crime" or "defence"."""
    if event.kind in ("operation", "verdict", "notice"):
        return "crime"
    if event.kind == "call":
        return "defence"
    return "defence" if event.host.military else "crime"

_FORBIDDEN_LINE = re.compile(r"^[^\S\n]*source", re.IGNORECASE | re.MULTILINE)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenderedItem:
    """One item's text parts, before it is laid out in a seed file."""

    title: str
    agency: str
    paragraphs: tuple[str, ...]

    def text(self) -> str:
        """The item as it appears in a seed file (no trailing blank line)."""
        return f"{self.title}\n\nSource: {self.agency}\n\n" + "\n\n".join(self.paragraphs)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _dmy(day: date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def _mdy(day: date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"


def _join_names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiouAEIOU" else "a"


def _possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "\u2019s")


def _amount_phrase(event: Event) -> str:
    if event.amount >= 100:
        return f"EUR {event.amount} million"
    return f"EUR {event.amount / 10:.1f} million".replace(".0 ", " ")


def event_context(event: Event, agency: Agency) -> dict[str, object]:
    """The template slots for `event` as told by `agency`."""
    goods, _, _ = event.crime.goods[event.goods]
    countries = [event.country.name, *(p.name for p in event.partners)]
    person = event.person
    adj = event.country.adjective
    group = event.crime.group
    modus = event.crime.modus[event.nth % len(event.crime.modus)]
    context: dict[str, object] = {
        "agency_short": agency.short, "host_short": event.host.short,
        "host_short_cap": _cap(event.host.short), "host_head": event.host.head,
        "host_head_cap": _cap(event.host.head), "host_hq": event.host.hq,
        "host_side": event.host.side,
        "country": event.country.name, "adj": adj, "city": event.city,
        "country2": event.partners[0].name, "adj2": event.partners[0].adjective,
        "city2": event.city2, "countries": _join_names(countries),
        "n_countries": len(countries),
        "others": "one other country" if len(countries) == 2 else f"{len(countries) - 1} other "
                  "countries",
        "country_possessive": _possessive(event.country.name),
        "person": f"{person.role} {person.name}", "person_name": person.name,
        "person_role": person.role, "person_last": person.last, "person_short": person.short,
        "the_person": f"the {adj} {person.role}, {person.name},",  # always mid-sentence
        "the_signatory": f"{adj} {person.role} {person.name}",
        "person2": f"{event.person2.role} {event.person2.name}",
        "op": event.operation, "crime": event.crime.name, "crime_cap": _cap(event.crime.name),
        "group": group, "group_cap": _cap(group), "a_group": f"{_article(group)} {group}",
        "goods": goods, "quantity": f"{event.quantity:,}", "arrests": event.arrests,
        "searches": event.searches, "victims": f"{event.victims:,}", "officers": event.officers,
        "months": event.months, "cash": f"EUR {event.cash:,}".replace(",", " "),
        "amount_phrase": _amount_phrase(event), "years": event.years,
        "nth": _ordinal(event.nth), "topic": event.topics[0], "topic2": event.topics[1],
        "committee": event.committee, "instrument": event.instrument,
        "instrument_bare": event.instrument.split(" ", 1)[1], "skill": event.skill,
        "skill2": _second_skill(event), "venue": event.venue, "city3": event.city3,
        "meeting_city": event.venue.removeprefix("in ").rsplit(" in ", 1)[-1],
        "span": event.span, "fee": event.cash // 100,
    }
    context["modus"] = modus.format_map(context)
    return context


def _second_skill(event: Event) -> str:
    skills = _CRIME_SKILLS if event.skill in _CRIME_SKILLS else _DEFENCE_SKILLS
    other = skills[event.nth % len(skills)]
    return other if other != event.skill else skills[(event.nth + 1) % len(skills)]


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(
        number % 10, "th")
    return f"{number}{suffix}"


def title_candidates(event: Event, context: dict[str, object],
                     rng: random.Random) -> Iterator[str]:
    """Titles for `event`: every template in random order, then ones with an added detail."""
    templates = list(_TITLES[event.kind])
    rng.shuffle(templates)
    titles = [_cap(t.format_map(context)) for t in templates]
    yield from titles
    day = _dmy(event.day)
    details = (
        ("in", event.city), ("in", event.city3), ("in", event.country.name), ("on", day[:-5]),
        ("after", event.operation), ("with", event.person.name),
    )
    for title in titles:
        for word, detail in details:
            if detail not in title:
                yield f"{title} {word} {detail}"
    for title in titles:
        yield f"{title} ({event.city}, {day})"


@dataclass(frozen=True, slots=True)
class DateFrame:
    """How an item states its date: lines before the lead, a lead prefix, an inline phrase."""

    lines: tuple[str, ...] = ()
    prefix: str = ""
    on_date: str = ""


def date_frame(agency: Agency, event: Event, rng: random.Random, dated: bool) -> DateFrame:
    """The agency's way of dating `event` (a date line, a dateline, a lead)."""
    style, day = agency.style, event.day
    if not dated:
        if style in ("interpol", "jcs"):
            return DateFrame(prefix=f"{agency.dateline} {_dash(style)} ")
        return DateFrame()
    if style == "interpol":
        return DateFrame((_dmy(day),), f"{agency.dateline} {EN_DASH} ")
    if style == "jcs" and event.kind == "call":
        spokesperson = agency.spokesperson
        return DateFrame((_mdy(day), f"{agency.dateline} {EM_DASH} {spokesperson.role} "
                                     f"{spokesperson.name} provided the following readout:"))
    if style == "jcs":
        return DateFrame((_mdy(day),), f"{agency.dateline} {EM_DASH} ")
    mode = rng.random()
    if style == "defence" and mode < 0.3:
        return DateFrame((_mdy(day),))
    if event.kind == "conference" and mode < 0.6:
        start = day - timedelta(days=event.span - 1)
        first = str(start.day) if start.month == day.month else _dmy(start)[:-5]
        return DateFrame(prefix=f"From {first} to {_dmy(day)}, ")
    if style in ("eurojust", "police", "prosecution") and mode < 0.6:
        return DateFrame(prefix=f"{agency.dateline}, {_dmy(day)} {EN_DASH} ")
    weekday = WEEKDAYS[day.weekday()]
    if mode < 0.35:
        if style == "europol":
            return DateFrame(prefix=f"On {_dmy(day)}, ")
        return DateFrame(prefix=f"On {weekday} {_dmy(day)}, ")
    if mode < 0.7:
        return DateFrame(on_date=f" on {weekday} ({_dmy(day)})")
    return DateFrame(on_date=f" on {_dmy(day)}")


def _dash(style: str) -> str:
    return EM_DASH if style == "jcs" else EN_DASH


class _Sentences:
    """An item's supply of body sentences: its kind's details once each, then generic ones.

    Generic sentences combine a subject, a verb, an object and a tail, each list shuffled per
    item and walked in step, so a long body does not repeat itself.
    """

    def __init__(self, event: Event, rng: random.Random) -> None:
        self.rng = rng
        self.details = list(_DETAILS[event.kind])
        rng.shuffle(self.details)
        self.parts: list[list[str]] | None = None
        self.domain = _domain(event)
        self.turn = 0

    def detail(self, context: dict[str, object]) -> str:
        """A detail sentence not used yet in this item, else a generic one."""
        if self.details:
            return self.details.pop().format_map(context)
        return self.generic(context)

    def next(self, context: dict[str, object]) -> str:
        """The next body sentence: a detail or a generic one."""
        if self.details and self.rng.random() < 0.6:
            return self.details.pop().format_map(context)
        return self.generic(context)

    def generic(self, context: dict[str, object]) -> str:
        """A generic sentence assembled from shuffled parts."""
        if self.parts is None:
            self.parts = [list(part) for part in _GENERIC[self.domain]]
            for part in self.parts:
                self.rng.shuffle(part)
        turn = self.turn
        self.turn += 1
        words = [part[turn % len(part)] for part in self.parts]
        return f"{words[0]} {words[1]} {words[2]} {words[3]}.".format_map(context)


def _words(texts: Sequence[str]) -> int:
    return sum(text.count(" ") + 1 for text in texts)


class Renderer:
    """Turns events into item text, in the voice of the agency that publishes them."""

    def report(self, event: Event, agency: Agency, seed: int, words: int,
               dated: bool) -> tuple[str, tuple[str, ...], dict[str, object]]:
        """A full report: first title choice, body paragraphs, and the template context.

        The body has 2 to 8 blocks (prose paragraphs, a quote, a heading, a bullet list)
        after any date lines, and about `words` words.
        """
        rng = random.Random(seed)
        context = event_context(event, agency)
        title = _cap(rng.choice(_TITLES[event.kind]).format_map(context))
        sentences = _Sentences(event, rng)
        paragraphs = self._opening(event, agency, context, rng, dated, sentences)
        count = _words(paragraphs)
        planned = max(2, min(8, round(words / 50) + rng.randint(-1, 1)))
        blocks = 1
        extras_done: set[str] = set()
        while count < words and blocks < planned:
            extra = []
            if planned - blocks > 2:
                extra = self._extra(event, agency, context, rng, extras_done)
            if not extra:
                quota = (words - count) // (planned - blocks)
                extra = [self._prose(sentences, context, max(quota, 12))]
            paragraphs.extend(extra)
            blocks += len(extra)
            count += _words(extra)
        paragraphs.extend(self._closing(agency))
        return title, tuple(paragraphs), context

    def _opening(self, event: Event, agency: Agency, context: dict[str, object],
                 rng: random.Random, dated: bool, sentences: _Sentences) -> list[str]:
        """The date line (if the agency uses one) and the lead paragraph."""
        lead = rng.choice(_LEADS[event.kind])
        frame = date_frame(agency, event, rng, dated)
        context["on_date"] = frame.on_date
        sentence = lead.format_map(context)
        context["on_date"] = ""
        if not frame.prefix.startswith(("On ", "From ")):
            sentence = _cap(sentence)
        lead_paragraph = _cap(frame.prefix + sentence)
        if rng.random() < 0.6:
            lead_paragraph += " " + sentences.detail(context)
        return [*frame.lines, lead_paragraph]

    @staticmethod
    def _prose(sentences: _Sentences, context: dict[str, object], quota: int) -> str:
        """A paragraph of body sentences about `quota` words long."""
        parts: list[str] = []
        count = 0
        while count < quota:
            sentence = sentences.next(context)
            parts.append(sentence)
            count += sentence.count(" ") + 1
        return " ".join(parts)

    def _extra(self, event: Event, agency: Agency, context: dict[str, object],
               rng: random.Random, done: set[str]) -> list[str]:
        """Now and then a non-prose block: a quote, a heading or a bullet list (each once)."""
        domain = _domain(event)
        roll = rng.random()
        if roll < 0.12 and "quote" not in done:
            done.add("quote")
            return self._quote(event, agency, context, rng, domain)
        if roll < 0.2 and "heading" not in done:
            done.add("heading")
            return [rng.choice(_HEADINGS[domain]).format_map(context)]
        if roll < 0.26 and "bullets" not in done and event.kind == "operation":
            done.add("bullets")
            return self._authorities(event)
        return []

    @staticmethod
    def _quote(event: Event, agency: Agency, context: dict[str, object],
               rng: random.Random, domain: str) -> list[str]:
        speaker = event.person2 if domain == "crime" and rng.random() < 0.5 else None
        if speaker is not None:
            intro = f"{speaker.role} {speaker.name} said:"
        else:
            who = agency.spokesperson
            intro = f"{who.name}, {who.role}, said:"
        lines = rng.sample(_QUOTES[domain], 2)
        quote = " ".join(line.format_map(context) for line in lines)
        return [intro, f"{LEFT_QUOTE}{quote}{RIGHT_QUOTE}"]

    @staticmethod
    def _authorities(event: Event) -> list[str]:
        lines = []
        for number, country in enumerate((event.country, *event.partners)):
            authority = _AUTHORITIES[(event.nth + number) % len(_AUTHORITIES)]
            city = event.city if country is event.country else country.cities[0]
            lines.append(f"{BULLET}{_cap(country.name)}: {authority.format(city=city)}")
        return ["The actions were carried out at the request of and by the following "
                "authorities:", "\n".join(lines)]

    @staticmethod
    def _closing(agency: Agency) -> list[str]:
        if agency.style == "jcs":
            return ["For more Joint Staff news, visit: www.jcs.mil.\nConnect with the Joint "
                    "Staff on social media: \nFacebookTwitterInstagramYouTube,\nLinkedIn and "
                    "Flickr."]
        return []

    def advisory(self, event: Event, agency: Agency, seed: int) -> tuple[str, tuple[str, ...],
                                                                         dict[str, object]]:
        """A media advisory announcing `event` (always dated), with its first title choice."""
        rng = random.Random(seed)
        context = event_context(event, agency)
        day = event.day
        context["when"] = f"On {WEEKDAYS[day.weekday()]}, {_dmy(day)}, "
        context["weekday"] = WEEKDAYS[day.weekday()]
        lead, titles, programme = _ADVISORIES.get(event.kind, _ADVISORIES["operation"])
        title = _cap(rng.choice(titles).format_map(context))
        hour = rng.choice(("09:30", "10:00", "11:00", "12:15", "14:30", "15:00", "16:45"))
        paragraphs = [
            _cap(lead.format_map(context)), "Media advisory",
            f"{hour} (CET) {programme.format_map(context)}", "Media coverage",
            "\n".join((
                f"{BULLET}Media representatives with annual accreditation can attend in person.",
                f"{BULLET}Journalists wishing to cover the event should arrive 30 minutes "
                "before it starts.",
                f"{BULLET}The event will be streamed live on the website and on X "
                f"@{agency.handle}.",
            )),
            f"For more information:\nContact the {agency.name} Press Office\n"
            f"Follow us on X: @{agency.handle}",
        ]
        return title, tuple(paragraphs), context


def europol_summary(paragraphs: Sequence[str], rng: random.Random) -> str:
    """The paragraphs as a Europol feed summary: joined, cut near 400 characters, with "…".

    Like the real feed, a paragraph is glued to a heading without a space.
    """
    parts: list[str] = []
    for paragraph in paragraphs:
        if parts:
            is_heading = len(paragraph) < 60 and not paragraph.endswith(".")
            parts.append("" if is_heading else " ")
        parts.append(paragraph.replace("\n", " "))
    text = "".join(parts)
    limit = min(rng.randint(320, 470), int(len(text) * 0.85))
    cut = text[:limit]
    if rng.random() < 0.7 and " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + ELLIPSIS


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ItemPlan:
    """What one item will be; its text is a pure function of the plan (and of its source's)."""

    uid: int
    form: str  # "report", "advisory", "summary" (cut of a full text), "repost"
    event: Event
    agency: Agency
    seed: int
    words: int
    dated: bool
    order: tuple[int, int, float]  # (day, phase: advisories 0, reports 1, copies 2, tiebreak)
    source: int | None = None  # the item a "repost" copies or a "summary" cuts
    group: int | None = None
    near_miss: int | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """The command-line options."""

    items: int
    out: Path
    agencies: int
    files: int
    seed: int
    dup_rate: float
    start: date
    days: int
    truth: Path | None


class Planner:
    """Decides every item of a corpus: its event, agency, seed, length and place."""

    def __init__(self, settings: Settings, vocab: Vocabulary, agencies: list[Agency],
                 rng: random.Random) -> None:
        self.settings = settings
        self.vocab = vocab
        self.agencies = agencies
        self.rng = rng
        self.weights = [2.0 if a.home is None else 1.0 for a in agencies]
        self.europol = next((a for a in agencies if a.style == "europol"), None)
        self.first = settings.start
        self.last = settings.start + timedelta(days=settings.days - 1)
        self.plans: list[ItemPlan] = []
        self.groups = 0
        self.near_misses = 0

    def plan(self) -> list[ItemPlan]:
        """All item plans, sorted into publication order."""
        total = self.settings.items
        extras = round(total * self.settings.dup_rate)
        misses = round(total * self.settings.dup_rate)
        while extras > 0 and total - len(self.plans) >= 2:
            room = min(total - len(self.plans), extras + 1)
            extras -= self._group(room) - 1
        while misses > 0 and total - len(self.plans) >= 2:
            self._near_miss_pair()
            misses -= 1
        while len(self.plans) < total:
            self._single()
        self.plans.sort(key=lambda p: p.order)
        return self.plans

    # -- building blocks ---------------------------------------------------------------------

    def _agency(self, kinds: Sequence[str] | None = None, other_than: Agency | None = None,
                about: Event | None = None) -> Agency:
        """A weighted random agency reporting `kinds`; one at home in `about` is likelier."""
        involved = (about.country, *about.partners) if about is not None else ()
        candidates = [(a, w * 6 if a.home in involved else w)
                      for a, w in zip(self.agencies, self.weights, strict=True)
                      if a is not other_than and (kinds is None or set(kinds) & set(a.kinds))]
        if not candidates:
            candidates = [(a, w) for a, w in zip(self.agencies, self.weights, strict=True)
                          if a is not other_than] or [(self.agencies[0], 1.0)]
        pool = [agency for agency, _ in candidates]
        weights = [weight for _, weight in candidates]
        return self.rng.choices(pool, weights)[0]

    def _day(self) -> date:
        return self.first + timedelta(days=self.rng.randrange(self.settings.days))

    def _length(self) -> int:
        return int(min(860, max(55, self.rng.lognormvariate(math.log(WORDS_MEDIAN), 0.55))))

    def _add(self, form: str, event: Event, agency: Agency, *, delay: int, phase: int,
             seed: int | None = None, dated: bool | None = None, words: int | None = None,
             source: int | None = None, group: int | None = None,
             near_miss: int | None = None) -> ItemPlan:
        day = (event.day + timedelta(days=delay)).toordinal()
        plan = ItemPlan(
            uid=len(self.plans), form=form, event=event, agency=agency,
            seed=self.rng.getrandbits(64) if seed is None else seed,
            words=self._length() if words is None else words,
            dated=(self.rng.random() >= UNDATED_SHARE) if dated is None else dated,
            order=(day, phase, self.rng.random()), source=source, group=group,
            near_miss=near_miss,
        )
        self.plans.append(plan)
        return plan

    def _event(self, agency: Agency, kinds: Sequence[str] | None = None) -> Event:
        allowed = [k for k in agency.kinds if kinds is None or k in kinds] or list(kinds or ())
        kind = self.rng.choice(allowed or agency.kinds)
        return make_event(kind, self._day(), agency, self.vocab, self.rng)

    def _single_form(self, agency: Agency) -> str:
        return "summary" if agency.style == "europol" and self.rng.random() < 0.6 else "report"

    # -- units -------------------------------------------------------------------------------

    def _single(self) -> None:
        agency = self._agency()
        self._add(self._single_form(agency), self._event(agency), agency,
                  delay=self.rng.randint(0, 1), phase=1)

    def _group(self, room: int) -> int:
        """Plant one group of second reports in at most `room` items; return its size."""
        group = self.groups
        self.groups += 1
        kind = self.rng.choices(("rewrite", "advisory", "summary", "repost"),
                                (0.4, 0.2, 0.25, 0.15))[0]
        size = 3 if room >= 3 and self.rng.random() < 0.2 else 2
        if kind == "advisory":
            agency = self._agency(("meeting", "conference", "agreement", "operation"))
            event = self._event(agency, ("meeting", "conference", "agreement", "operation"))
            self._add("advisory", event, agency, delay=-self.rng.randint(0, 1), phase=0,
                      dated=True, group=group)
            self._add("report", event, agency, delay=self.rng.randint(0, 1), phase=1,
                      group=group)
            if size == 3:
                self._rewrite(event, agency, group)
            return size
        agency = self._agency()
        event = self._event(agency)
        original = self._add("report", event, agency, delay=self.rng.randint(0, 1), phase=1,
                             group=group)
        if kind == "summary":
            europol = self.europol or agency
            self._add("summary", event, europol, delay=_delay(original) + self.rng.randint(0, 2),
                      phase=2, source=original.uid, group=group)
            return 2
        if kind == "repost":
            self._add("repost", event, agency, delay=_delay(original) + self.rng.randint(1, 3),
                      phase=2, source=original.uid, group=group)
            return 2
        for _ in range(size - 1):
            self._rewrite(event, agency, group)
        return size

    def _rewrite(self, event: Event, original: Agency, group: int) -> None:
        agency = self._agency((event.kind,), other_than=original, about=event)
        self._add("report", event, agency, delay=self.rng.randint(0, 3), phase=1, group=group)

    def _near_miss_pair(self) -> None:
        pair = self.near_misses
        self.near_misses += 1
        agency = self._agency()
        event = self._event(agency)
        form = self._single_form(agency)
        first = self._add(form, event, agency, delay=self.rng.randint(0, 1), phase=1,
                          dated=True, near_miss=pair)
        twin = mutate_event(event, self.vocab, self.rng, self.first, self.last)
        self._add(form, twin, agency, delay=self.rng.randint(0, 3), phase=1, seed=first.seed,
                  dated=True, words=first.words, near_miss=pair)


def _delay(plan: ItemPlan) -> int:
    """Days between the plan's event and its place in the corpus."""
    return plan.order[0] - plan.event.day.toordinal()


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class CorpusStats:
    """What was written."""

    items: int = 0
    files: int = 0
    groups: int = 0
    near_misses: int = 0
    bytes: int = 0
    title_fallbacks: int = 0


class CorpusWriter:
    """Renders plans in order, keeps titles unique, writes files and the answer key."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.seen_titles: set[str] = set()
        self.kept: dict[int, RenderedItem] = {}
        self.group_titles: dict[int, list[str]] = {}
        self.near_titles: dict[int, list[str]] = {}
        self.title_fallbacks = 0

    def render(self, plan: ItemPlan, needed: Counter[int]) -> RenderedItem:
        """The item for `plan`; sources of later copies are kept until those are rendered."""
        if plan.form == "repost":
            item = self._take(plan.source, needed)
        else:
            item = self._render_new(plan, needed)
        if needed[plan.uid]:
            self.kept[plan.uid] = item
        if plan.group is not None:
            self.group_titles.setdefault(plan.group, []).append(item.title)
        if plan.near_miss is not None:
            self.near_titles.setdefault(plan.near_miss, []).append(item.title)
        _check_item(item)
        return item

    def _take(self, uid: int | None, needed: Counter[int]) -> RenderedItem:
        assert uid is not None
        item = self.kept[uid]
        needed[uid] -= 1
        if not needed[uid]:
            del self.kept[uid]
        return item

    def _render_new(self, plan: ItemPlan, needed: Counter[int]) -> RenderedItem:
        event, agency = plan.event, plan.agency
        if plan.form == "advisory":
            title, paragraphs, context = self.renderer.advisory(event, agency, plan.seed)
        else:
            title, paragraphs, context = self.renderer.report(event, agency, plan.seed,
                                                              plan.words, plan.dated)
        if plan.form == "summary":
            full = (self._take(plan.source, needed).paragraphs if plan.source is not None
                    else paragraphs)
            paragraphs = (europol_summary(full, random.Random(plan.seed + 2)),)
        title = self._unique(title, event, context, plan.seed)
        return RenderedItem(title, agency.name, paragraphs)

    def _unique(self, title: str, event: Event, context: dict[str, object], seed: int) -> str:
        if title not in self.seen_titles:
            self.seen_titles.add(title)
            return title
        for candidate in title_candidates(event, context, random.Random(seed + 1)):
            if candidate not in self.seen_titles:
                self.seen_titles.add(candidate)
                self.title_fallbacks += 1
                return candidate
        raise RuntimeError(f"no unique title for event of {_dmy(event.day)}: {title!r}")

    def truth(self) -> dict[str, list[list[str]]]:
        """The answer key: planted groups and near-miss pairs, as lists of titles."""
        return {
            "groups": [titles for _, titles in sorted(self.group_titles.items())],
            "near_misses": [titles for _, titles in sorted(self.near_titles.items())],
        }


def _check_item(item: RenderedItem) -> None:
    """Fail loudly if a template could break the seed format."""
    if not item.title.strip() or "\n" in item.title or _FORBIDDEN_LINE.match(item.title):
        raise ValueError(f"bad title: {item.title!r}")
    for paragraph in item.paragraphs:
        if not paragraph.strip() or _FORBIDDEN_LINE.search(paragraph) or "\n\n" in paragraph:
            raise ValueError(f"bad paragraph in {item.title!r}: {paragraph[:80]!r}")


def split_counts(items: int, files: int) -> list[int]:
    """How many items each file holds: as even as possible, earlier files first."""
    base, extra = divmod(items, files)
    return [base + (1 if index < extra else 0) for index in range(files)]


def generate(settings: Settings) -> CorpusStats:
    """Plan, render and write a corpus; return what was written."""
    rng = random.Random(settings.seed)
    vocab = Vocabulary()
    agencies = build_agencies(settings.agencies, vocab, rng)
    planner = Planner(settings, vocab, agencies, rng)
    plans = planner.plan()
    needed: Counter[int] = Counter(p.source for p in plans if p.source is not None)
    writer = CorpusWriter(Renderer())
    settings.out.mkdir(parents=True, exist_ok=True)
    stats = CorpusStats(groups=planner.groups, near_misses=planner.near_misses)
    position = 0
    for number, count in enumerate(split_counts(settings.items, settings.files)):
        texts = [writer.render(plan, needed).text() for plan in plans[position:position + count]]
        position += count
        data = ("\n\n".join(texts) + "\n").encode("utf-8")
        (settings.out / f"seed_{number:05d}.txt").write_bytes(data)
        stats.items += count
        stats.files += 1
        stats.bytes += len(data)
    stats.title_fallbacks = writer.title_fallbacks
    if settings.truth is not None:
        settings.truth.parent.mkdir(parents=True, exist_ok=True)
        settings.truth.write_text(json.dumps(writer.truth(), ensure_ascii=False, indent=1) + "\n",
                                  encoding="utf-8")
    return stats


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse and check the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, required=True, help="items in total (>= 1)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--agencies", type=int, default=40, help="agencies (default 40)")
    parser.add_argument("--files", type=int, help="files (default: one per 1,000 items)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--dup-rate", type=float, default=0.1,
                        help="share of items that are second reports; near misses are planted "
                             "at the same rate (default 0.1)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1),
                        help="first event date, YYYY-MM-DD (default 2024-01-01)")
    parser.add_argument("--days", type=int, default=365, help="days the dates span (365)")
    parser.add_argument("--truth", type=Path, help="write the planted groups here (JSON)")
    args = parser.parse_args(argv)
    files = args.files if args.files is not None else max(1, math.ceil(args.items / 1000))
    if args.items < 1:
        parser.error("--items must be at least 1")
    if not 1 <= files <= args.items:
        parser.error("--files must be between 1 and --items")
    if args.agencies < 1:
        parser.error("--agencies must be at least 1")
    if args.days < 1:
        parser.error("--days must be at least 1")
    if not 0.0 <= args.dup_rate <= 1.0:
        parser.error("--dup-rate must be between 0 and 1")
    return Settings(args.items, args.out, args.agencies, files, args.seed, args.dup_rate,
                    args.start, args.days, args.truth)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator and print one summary line."""
    settings = parse_args(argv)
    started = time.perf_counter()
    stats = generate(settings)
    elapsed = time.perf_counter() - started
    print(f"items={stats.items} files={stats.files} agencies={settings.agencies} "
          f"groups={stats.groups} near_misses={stats.near_misses} bytes={stats.bytes} "
          f"({stats.bytes / 1e6:.1f} MB, {stats.bytes / stats.items:.0f} B/item) "
          f"seconds={elapsed:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
