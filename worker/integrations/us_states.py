"""Two-letter codes for the region names the hub sends (``"Maryland"`` → ``"MD"``).

Dotcom's state fields hold two characters. The hub sends state *names*; this table turns the
names of US states, the District of Columbia, US territories, the armed-forces "states" and the
Canadian provinces and territories into their postal codes.
"""

from __future__ import annotations

import re

US_STATES: dict[str, str] = {
    "Alabama": "AL",
    "Alaska": "AK",
    "Arizona": "AZ",
    "Arkansas": "AR",
    "California": "CA",
    "Colorado": "CO",
    "Connecticut": "CT",
    "Delaware": "DE",
    "District of Columbia": "DC",
    "Florida": "FL",
    "Georgia": "GA",
    "Hawaii": "HI",
    "Idaho": "ID",
    "Illinois": "IL",
    "Indiana": "IN",
    "Iowa": "IA",
    "Kansas": "KS",
    "Kentucky": "KY",
    "Louisiana": "LA",
    "Maine": "ME",
    "Maryland": "MD",
    "Massachusetts": "MA",
    "Michigan": "MI",
    "Minnesota": "MN",
    "Mississippi": "MS",
    "Missouri": "MO",
    "Montana": "MT",
    "Nebraska": "NE",
    "Nevada": "NV",
    "New Hampshire": "NH",
    "New Jersey": "NJ",
    "New Mexico": "NM",
    "New York": "NY",
    "North Carolina": "NC",
    "North Dakota": "ND",
    "Ohio": "OH",
    "Oklahoma": "OK",
    "Oregon": "OR",
    "Pennsylvania": "PA",
    "Rhode Island": "RI",
    "South Carolina": "SC",
    "South Dakota": "SD",
    "Tennessee": "TN",
    "Texas": "TX",
    "Utah": "UT",
    "Vermont": "VT",
    "Virginia": "VA",
    "Washington": "WA",
    "West Virginia": "WV",
    "Wisconsin": "WI",
    "Wyoming": "WY",
    # Territories and freely associated states with USPS codes.
    "American Samoa": "AS",
    "Guam": "GU",
    "Northern Mariana Islands": "MP",
    "Puerto Rico": "PR",
    "United States Virgin Islands": "VI",
    "U.S. Virgin Islands": "VI",
    "Virgin Islands": "VI",
    "United States Minor Outlying Islands": "UM",
    "Federated States of Micronesia": "FM",
    "Marshall Islands": "MH",
    "Palau": "PW",
    # Military mail.
    "Armed Forces Americas": "AA",
    "Armed Forces Europe": "AE",
    "Armed Forces Africa": "AE",
    "Armed Forces Canada": "AE",
    "Armed Forces Middle East": "AE",
    "Armed Forces Pacific": "AP",
    # Common variants.
    "Washington DC": "DC",
    "Washington D.C.": "DC",
}

CANADIAN_PROVINCES: dict[str, str] = {
    "Alberta": "AB",
    "British Columbia": "BC",
    "Manitoba": "MB",
    "New Brunswick": "NB",
    "Newfoundland and Labrador": "NL",
    "Newfoundland": "NL",
    "Northwest Territories": "NT",
    "Nova Scotia": "NS",
    "Nunavut": "NU",
    "Ontario": "ON",
    "Prince Edward Island": "PE",
    "Quebec": "QC",
    "Québec": "QC",
    "Saskatchewan": "SK",
    "Yukon": "YT",
    "Yukon Territory": "YT",
}


def _key(name: str) -> str:
    """Names compare without case, dots, commas or extra spaces ("washington, d.c.")."""
    return " ".join(re.sub(r"[.,]", " ", name).casefold().split())


_CODES: dict[str, str] = {
    _key(name): code for table in (US_STATES, CANADIAN_PROVINCES) for name, code in table.items()
}


def region_code(name: str) -> str | None:
    """The two-letter code for a US or Canadian region name, or None if the name is unknown."""
    return _CODES.get(_key(name))
