"""Deterministic retail demo warehouse (DuckDB) for demos, tests and the ML features.

A fictional European omnichannel retailer ("Northwind & Co"): 5 regions, 12 stores (two open during
the history), 4,200 customers, 89 products, ~60k orders with ~2.5 lines each, and daily store
traffic, from 2023-12-01 to 2026-11-30 inclusive. The end date is fixed (never "today") so every
run with the same seed writes identical table contents. All money is EUR; timestamps are TIMESTAMP
(no time zone) holding UTC.

Tables (column names are what `semantic_models/demo` refers to):

- regions(id, name, code)
- stores(id, name, city, country, region_id, opened_at DATE, format, size_sqm, timezone)
- customers(id, name, email, city, country, region_id, segment, marketing_opt_in, signed_up_at)
  -- segment NULL for ~2%, email ~3%, city ~4%, marketing_opt_in ~3% (on purpose)
- products(id, sku, name, category, subcategory, brand, unit_price, unit_cost, is_active)
- orders(id, customer_id, store_id, created_at, status, channel, discount)
  -- channel web/app orders carry the fulfilling store (the customer's region); discount is the
     order-level promotion rate (0.15 = 15 %)
- order_items(id, order_id, product_id, quantity, unit_price, unit_cost, discount)
  -- unit_price/unit_cost are the price and cost at the time of sale (list prices move every
     January); discount is the effective line rate (order promotion combined with markdowns), so
     the net line amount is quantity * unit_price * (1 - discount)
- daily_traffic(date, store_id, visits, sessions, conversions)
  -- one row per store and day since opening; visits = footfall, sessions = web/app sessions of
     the store's catchment, conversions = that day's in-store (channel 'store') orders of the store

Signals built in, so forecasting and anomaly detection have something real to find:

- trend: ~28 %/year volume growth plus a January list-price increase of ~3 %; app share of orders
  grows from ~7 % to ~22 %; two store openings (Zurich 2024-09-14, Lyon 2025-04-05)
- weekly seasonality: in-store orders peak on Saturday (DACH stores are closed on Sunday),
  web orders peak Monday-Tuesday and dip at the weekend
- yearly seasonality: November/December peak, July/August dip; category mix is seasonal too
  (toys and electronics before Christmas, sports in summer and January)
- holidays (`HOLIDAYS`): Black Friday, Cyber Monday, Christmas Eve (short day), Christmas Day and
  New Year's Day (stores closed, online low), Boxing Day, New Year's Eve

Planted anomalies (`PLANTED_ANOMALIES`, dates inclusive):

- 2025-06-18 store_outage: store 4 (Berlin Mitte) has a systems outage and closes; its orders in
  every channel fall to ~2 % of normal and its visits to ~2 % (sessions stay normal)
- 2025-09-11 campaign_traffic_spike: a social campaign multiplies daily_traffic visits by 2.5 and
  sessions by 4.5 in every store while orders stay normal, so the conversion rate collapses
- 2026-03-02..2026-03-08 electronics_returns: a faulty batch; ~45 % of orders placed that week that
  contain an Electronics item end up 'returned' (normally ~7 %)
- 2026-08-14 pricing_error: product 2 (Auralis Noise-Cancelling Headphones) sells at 19.99 instead
  of 199.99 (a dropped digit) for one day; its units jump >10x, its gross margin is negative and
  web/app orders are up ~80 %
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pyarrow as pa

from headless_bi.warehouse.duckdb_warehouse import connect_file

START = date(2023, 12, 1)
END = date(2026, 11, 30)
"""First and last day of history (inclusive); fixed so the data never depends on the clock."""

CHANNELS = ("store", "web", "app")
STATUSES = ("placed", "shipped", "completed", "returned", "cancelled")
SEGMENTS = ("consumer", "small business", "corporate")


class PlantedAnomaly(TypedDict):
    """One deliberately planted anomaly; `where` holds column filters on `table`."""

    name: str
    start: date
    end: date
    table: str
    where: dict[str, Any]
    measure: str
    direction: str
    what: str


class Holiday(TypedDict):
    date: date
    name: str
    effect: str


OUTAGE_DAY, OUTAGE_STORE_ID = date(2025, 6, 18), 4
CAMPAIGN_DAY = date(2025, 9, 11)
RETURNS_WEEK = (date(2026, 3, 2), date(2026, 3, 8))
PRICING_ERROR_DAY, PRICING_ERROR_PRODUCT_ID = date(2026, 8, 14), 2
ELECTRONICS = "Electronics"
DISCONTINUED_FROM = date(2026, 6, 1)  # inactive products stop selling from this day


PLANTED_ANOMALIES: list[PlantedAnomaly] = [
    {
        "name": "store_outage",
        "start": OUTAGE_DAY,
        "end": OUTAGE_DAY,
        "table": "orders",
        "where": {"store_id": OUTAGE_STORE_ID},
        "measure": "orders.count",
        "direction": "drop",
        "what": "Berlin Mitte (store 4) systems outage: the store closes and its orders in every channel "
        "fall to ~2% of normal; daily_traffic.visits for store 4 fall to ~2% as well.",
    },
    {
        "name": "campaign_traffic_spike",
        "start": CAMPAIGN_DAY,
        "end": CAMPAIGN_DAY,
        "table": "daily_traffic",
        "where": {},
        "measure": "daily_traffic.sessions",
        "direction": "spike",
        "what": "Social campaign: visits x2.5 and sessions x4.5 in every store, orders unchanged, so "
        "daily_traffic.conversion_rate drops to ~40% of normal.",
    },
    {
        "name": "electronics_returns",
        "start": RETURNS_WEEK[0],
        "end": RETURNS_WEEK[1],
        "table": "orders",
        "where": {"products.category": ELECTRONICS},
        "measure": "orders.return_rate",
        "direction": "spike",
        "what": "Faulty Electronics batch: ~45% of orders placed that week containing an Electronics item "
        "have status 'returned' (normally ~7%).",
    },
    {
        "name": "pricing_error",
        "start": PRICING_ERROR_DAY,
        "end": PRICING_ERROR_DAY,
        "table": "order_items",
        "where": {"product_id": PRICING_ERROR_PRODUCT_ID},
        "measure": "order_items.quantity",
        "direction": "spike",
        "what": "Pricing error: product 2 (Auralis Noise-Cancelling Headphones) sold at 19.99 instead of "
        "199.99; its units jump >10x, its gross margin is negative and web/app orders are up ~80% that day.",
    },
]
"""Anomalies a detector should find; dates are inclusive and seed-independent."""

# --------------------------------------------------------------------------------------------------
# Static reference data (seed-independent, so anomaly definitions can name ids).

REGIONS: list[tuple[int, str, str]] = [
    (1, "UK & Ireland", "UKI"),
    (2, "DACH", "DACH"),
    (3, "Benelux", "BNL"),
    (4, "France", "FR"),
    (5, "Nordics", "NORD"),
]


@dataclass(frozen=True)
class _Store:
    id: int
    name: str
    city: str
    country: str
    region_id: int
    opened_at: date
    format: str
    size_sqm: int
    timezone: str
    utc_offset: int  # standard-time offset in hours; all stores follow the EU summer-time rule
    sunday_closed: bool


STORES: list[_Store] = [
    _Store(
        1,
        "London Oxford Street",
        "London",
        "United Kingdom",
        1,
        date(2016, 3, 12),
        "flagship",
        2400,
        "Europe/London",
        0,
        False,
    ),
    _Store(
        2,
        "Manchester Arndale",
        "Manchester",
        "United Kingdom",
        1,
        date(2019, 10, 5),
        "standard",
        1100,
        "Europe/London",
        0,
        False,
    ),
    _Store(
        3,
        "Dublin Grafton Street",
        "Dublin",
        "Ireland",
        1,
        date(2021, 5, 20),
        "standard",
        950,
        "Europe/Dublin",
        0,
        False,
    ),
    _Store(
        4,
        "Berlin Mitte",
        "Berlin",
        "Germany",
        2,
        date(2015, 9, 1),
        "flagship",
        2600,
        "Europe/Berlin",
        1,
        True,
    ),
    _Store(
        5,
        "Munich Marienplatz",
        "Munich",
        "Germany",
        2,
        date(2018, 4, 14),
        "standard",
        1200,
        "Europe/Berlin",
        1,
        True,
    ),
    _Store(
        6,
        "Zurich Bahnhofstrasse",
        "Zurich",
        "Switzerland",
        2,
        date(2024, 9, 14),
        "standard",
        900,
        "Europe/Zurich",
        1,
        True,
    ),
    _Store(
        7,
        "Amsterdam Kalverstraat",
        "Amsterdam",
        "Netherlands",
        3,
        date(2017, 6, 3),
        "standard",
        1300,
        "Europe/Amsterdam",
        1,
        False,
    ),
    _Store(
        8,
        "Brussels Rue Neuve",
        "Brussels",
        "Belgium",
        3,
        date(2022, 2, 26),
        "standard",
        1000,
        "Europe/Brussels",
        1,
        False,
    ),
    _Store(
        9, "Paris Rivoli", "Paris", "France", 4, date(2014, 11, 8), "flagship", 2800, "Europe/Paris", 1, False
    ),
    _Store(
        10,
        "Lyon Part-Dieu",
        "Lyon",
        "France",
        4,
        date(2025, 4, 5),
        "standard",
        1050,
        "Europe/Paris",
        1,
        False,
    ),
    _Store(
        11,
        "Stockholm Drottninggatan",
        "Stockholm",
        "Sweden",
        5,
        date(2018, 8, 25),
        "standard",
        1150,
        "Europe/Stockholm",
        1,
        False,
    ),
    _Store(
        12,
        "Copenhagen Strøget",
        "Copenhagen",
        "Denmark",
        5,
        date(2020, 3, 7),
        "standard",
        1000,
        "Europe/Copenhagen",
        1,
        False,
    ),
]

# Customer home cities per region: (city, country, weight); store cities weigh more.
REGION_CITIES: dict[int, list[tuple[str, str, float]]] = {
    1: [
        ("London", "United Kingdom", 5),
        ("Manchester", "United Kingdom", 3),
        ("Dublin", "Ireland", 3),
        ("Birmingham", "United Kingdom", 1),
        ("Leeds", "United Kingdom", 1),
        ("Cork", "Ireland", 1),
    ],
    2: [
        ("Berlin", "Germany", 5),
        ("Munich", "Germany", 3),
        ("Zurich", "Switzerland", 2),
        ("Hamburg", "Germany", 1),
        ("Vienna", "Austria", 1),
        ("Cologne", "Germany", 1),
    ],
    3: [
        ("Amsterdam", "Netherlands", 4),
        ("Brussels", "Belgium", 3),
        ("Rotterdam", "Netherlands", 1),
        ("Utrecht", "Netherlands", 1),
        ("Antwerp", "Belgium", 1),
        ("Luxembourg", "Luxembourg", 0.5),
    ],
    4: [
        ("Paris", "France", 5),
        ("Lyon", "France", 2),
        ("Marseille", "France", 1),
        ("Lille", "France", 1),
        ("Toulouse", "France", 1),
        ("Bordeaux", "France", 1),
    ],
    5: [
        ("Stockholm", "Sweden", 4),
        ("Copenhagen", "Denmark", 3),
        ("Gothenburg", "Sweden", 1),
        ("Oslo", "Norway", 1),
        ("Aarhus", "Denmark", 1),
        ("Helsinki", "Finland", 1),
    ],
}

FIRST_NAMES = (
    "Oliver",
    "Emma",
    "Lukas",
    "Sophie",
    "Noah",
    "Mia",
    "Liam",
    "Hannah",
    "Lucas",
    "Emilia",
    "Finn",
    "Lea",
    "Elias",
    "Clara",
    "Jonas",
    "Amelie",
    "Louis",
    "Chloe",
    "Hugo",
    "Ines",
    "Jack",
    "Isla",
    "Thomas",
    "Julie",
    "Daan",
    "Sanne",
    "Lars",
    "Freja",
    "Oscar",
    "Astrid",
    "Matteo",
    "Sofia",
    "Leon",
    "Anna",
    "Jan",
    "Eva",
    "Paul",
    "Laura",
    "Max",
    "Nora",
)
LAST_NAMES = (
    "Smith",
    "Jones",
    "Murphy",
    "Kelly",
    "Brown",
    "Taylor",
    "Muller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Huber",
    "Jansen",
    "Bakker",
    "Peeters",
    "Janssens",
    "Maes",
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Petit",
    "Durand",
    "Andersson",
    "Johansson",
    "Karlsson",
    "Nilsson",
    "Hansen",
    "Nielsen",
    "Jensen",
    "Larsen",
    "Keller",
    "Brunner",
    "Moreau",
    "Laurent",
    "Visser",
    "Smit",
)


@dataclass(frozen=True)
class _Category:
    name: str
    code: str
    brands: tuple[str, ...]
    margin: tuple[float, float]  # list-price gross margin range
    popularity: float
    months: tuple[float, ...]  # demand multiplier Jan..Dec (product mix, not order volume)
    subcategories: dict[str, tuple[tuple[float, float], tuple[str, ...]]]  # name -> (price range, items)


CATALOG: tuple[_Category, ...] = (
    _Category(
        "Electronics",
        "ELE",
        ("Voltique", "Auralis", "Nordtek", "Pixelon"),
        (0.18, 0.34),
        1.2,
        (0.9, 0.85, 0.9, 0.9, 0.9, 0.9, 0.9, 0.95, 1.0, 1.05, 1.5, 1.6),
        {
            "Audio": (
                (29, 349),
                (
                    "Wireless Headphones",
                    "Noise-Cancelling Headphones",
                    "True Wireless Earbuds",
                    "Bluetooth Speaker",
                    "Soundbar",
                    "Portable Radio",
                ),
            ),
            "Computer Accessories": (
                (12, 149),
                (
                    "Mechanical Keyboard",
                    "Wireless Mouse",
                    "USB-C Hub",
                    "HD Webcam",
                    "Laptop Stand",
                    "Portable SSD",
                ),
            ),
            "Smart Home": (
                (15, 249),
                ("Smart Plug", "Smart Bulb Kit", "Video Doorbell", "Indoor Camera", "Smart Thermostat"),
            ),
        },
    ),
    _Category(
        "Home & Kitchen",
        "HOM",
        ("Kasa", "Lindqvist", "Maison Clair"),
        (0.38, 0.55),
        1.1,
        (1.0, 0.95, 1.05, 1.05, 1.0, 0.95, 0.9, 0.95, 1.05, 1.05, 1.1, 1.25),
        {
            "Cookware": (
                (15, 189),
                (
                    "Cast Iron Skillet",
                    "Non-Stick Pan Set",
                    "Dutch Oven",
                    "Chef's Knife",
                    "Cutting Board",
                    "Stock Pot",
                ),
            ),
            "Small Appliances": (
                (25, 299),
                ("Espresso Machine", "Electric Kettle", "Blender", "Toaster", "Air Fryer", "Stand Mixer"),
            ),
            "Home Decor": (
                (9, 129),
                ("Scented Candle", "Throw Blanket", "Table Lamp", "Wall Clock", "Ceramic Vase"),
            ),
        },
    ),
    _Category(
        "Apparel",
        "APP",
        ("Fjellstad", "Urban Loom", "Marin & Co"),
        (0.5, 0.66),
        1.3,
        (1.0, 0.9, 1.1, 1.15, 1.05, 0.95, 0.9, 0.95, 1.15, 1.15, 1.05, 1.05),
        {
            "Outerwear": (
                (59, 249),
                ("Rain Jacket", "Down Parka", "Wool Coat", "Fleece Jacket", "Softshell Jacket"),
            ),
            "Tops": (
                (15, 79),
                ("Organic T-Shirt", "Merino Sweater", "Linen Shirt", "Hoodie", "Polo Shirt", "Cardigan"),
            ),
            "Footwear": (
                (39, 179),
                ("Running Shoes", "Leather Boots", "Canvas Sneakers", "Hiking Shoes", "Slippers"),
            ),
        },
    ),
    _Category(
        "Sports & Outdoors",
        "SPO",
        ("Peakline", "Trailhead", "Velora"),
        (0.34, 0.5),
        0.8,
        (1.35, 1.05, 1.0, 1.1, 1.35, 1.5, 1.55, 1.4, 1.0, 0.85, 0.75, 0.8),
        {
            "Fitness": (
                (12, 199),
                (
                    "Yoga Mat",
                    "Adjustable Dumbbells",
                    "Resistance Bands",
                    "Foam Roller",
                    "Kettlebell",
                    "Jump Rope",
                ),
            ),
            "Camping": (
                (19, 299),
                ("Two-Person Tent", "Sleeping Bag", "Camping Stove", "Headlamp", "Insulated Bottle"),
            ),
            "Cycling": (
                (15, 249),
                (
                    "Bike Helmet",
                    "LED Bike Light Set",
                    "Cycling Gloves",
                    "Bike Lock",
                    "Saddle Bag",
                    "Mini Pump",
                ),
            ),
        },
    ),
    _Category(
        "Beauty",
        "BEA",
        ("Lumea", "Botanique"),
        (0.55, 0.7),
        0.7,
        (0.95, 1.2, 1.0, 1.0, 1.05, 1.0, 0.95, 0.95, 1.0, 1.0, 1.2, 1.6),
        {
            "Skincare": (
                (9, 69),
                (
                    "Hydrating Serum",
                    "Day Cream SPF30",
                    "Cleansing Gel",
                    "Night Repair Cream",
                    "Lip Balm Set",
                    "Face Mask Pack",
                ),
            ),
            "Fragrance": (
                (29, 119),
                (
                    "Eau de Parfum 50ml",
                    "Eau de Toilette 100ml",
                    "Scented Body Lotion",
                    "Discovery Set",
                    "Travel Spray",
                ),
            ),
        },
    ),
    _Category(
        "Toys & Games",
        "TOY",
        ("Brickwise", "Meeple & Co"),
        (0.36, 0.52),
        0.6,
        (0.7, 0.7, 0.75, 0.8, 0.8, 0.8, 0.85, 0.85, 0.9, 1.0, 1.6, 2.4),
        {
            "Board Games": (
                (15, 79),
                (
                    "Strategy Board Game",
                    "Family Party Game",
                    "Cooperative Quest",
                    "Classic Chess Set",
                    "Puzzle 1000 Pieces",
                    "Card Game Bundle",
                ),
            ),
            "Building Sets": (
                (9, 199),
                (
                    "Starter Brick Box",
                    "City Fire Station",
                    "Space Shuttle Kit",
                    "Castle Builder Set",
                    "Marble Run",
                ),
            ),
        },
    ),
)


_CATEGORY_INDEX = {c.name: i for i, c in enumerate(CATALOG)}

# Yearly seasonality of order volume at mid-month, Jan..Dec (interpolated daily).
_MONTH_LEVEL = (0.86, 0.84, 0.93, 0.98, 1.0, 0.92, 0.80, 0.79, 0.95, 1.02, 1.22, 1.45)
# Day-of-week multipliers Mon..Sun, per channel (mean 1).
_DOW = {
    "store": (0.78, 0.80, 0.86, 0.94, 1.12, 1.62, 0.88),
    "web": (1.14, 1.12, 1.08, 1.04, 0.94, 0.78, 0.90),
    "app": (0.96, 0.95, 0.96, 0.98, 1.04, 1.07, 1.04),
}
# Local-time hour-of-day weights per channel (stores trade 09:00-20:59).
_HOURS = {
    "store": (0,) * 9 + (3, 5, 7, 9, 9, 8, 7, 8, 9, 9, 7, 4) + (0,) * 3,
    "web": (
        2.0,
        1.2,
        0.7,
        0.4,
        0.3,
        0.4,
        0.8,
        1.5,
        2.5,
        3.2,
        3.6,
        3.8,
        4.2,
        4.0,
        3.7,
        3.6,
        3.8,
        4.3,
        5.0,
        5.8,
        6.4,
        6.0,
        4.6,
        3.0,
    ),
    "app": (
        1.5,
        0.8,
        0.4,
        0.3,
        0.3,
        0.6,
        1.5,
        3.2,
        3.8,
        3.0,
        2.8,
        3.4,
        4.6,
        4.4,
        3.2,
        3.0,
        3.2,
        3.8,
        4.4,
        5.0,
        5.6,
        5.8,
        4.8,
        3.0,
    ),
}
_GROWTH = math.log(1.28)  # ~28 % more orders per year
_BASE_RATE = {"flagship": 6.0, "standard": 2.4}  # orders/day per store at the start, all channels
_CUSTOMERS = 4200


def _last_sunday(year: int, month: int) -> date:
    d = date(year, month + 1, 1) - timedelta(days=1)
    return d - timedelta(days=(d.weekday() + 1) % 7)


def _holidays() -> list[Holiday]:
    out: list[Holiday] = []
    for year in range(START.year, END.year + 1):
        nov1 = date(year, 11, 1)
        thanksgiving = nov1 + timedelta(days=(3 - nov1.weekday()) % 7 + 21)  # 4th Thursday
        black_friday = thanksgiving + timedelta(days=1)
        out += [
            {"date": date(year, 1, 1), "name": "New Year's Day", "effect": "stores closed; online ~50%"},
            {"date": black_friday, "name": "Black Friday", "effect": "all channels ~3x; deep discounts"},
            {"date": black_friday + timedelta(days=3), "name": "Cyber Monday", "effect": "online ~2.3x"},
            {"date": date(year, 12, 24), "name": "Christmas Eve", "effect": "short day; ~55-60% of normal"},
            {"date": date(year, 12, 25), "name": "Christmas Day", "effect": "stores closed; online ~35-40%"},
            {"date": date(year, 12, 26), "name": "Boxing Day", "effect": "sales; ~1.2-1.3x"},
            {"date": date(year, 12, 31), "name": "New Year's Eve", "effect": "~70% of normal"},
        ]
    return sorted((h for h in out if START <= h["date"] <= END), key=lambda h: h["date"])


HOLIDAYS: list[Holiday] = _holidays()
"""Expected calendar effects (not anomalies): forecasting should treat them as known regressors."""

# Multipliers (store, web, app) per holiday name.
_HOLIDAY_EFFECT: dict[str, tuple[float, float, float]] = {
    "New Year's Day": (0.0, 0.5, 0.55),
    "Black Friday": (2.6, 3.2, 3.0),
    "Cyber Monday": (1.0, 2.4, 2.2),
    "Christmas Eve": (0.55, 0.6, 0.6),
    "Christmas Day": (0.0, 0.35, 0.4),
    "Boxing Day": (1.3, 1.2, 1.2),
    "New Year's Eve": (0.7, 0.7, 0.7),
}

# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    days: np.ndarray  # datetime64[D]
    day_s: np.ndarray  # epoch seconds of each day's midnight
    dow: np.ndarray  # 0 = Monday
    month: np.ndarray  # 1..12
    year: np.ndarray
    t_years: np.ndarray  # years since START
    dst: np.ndarray  # 1 during EU summer time

    @property
    def n(self) -> int:
        return len(self.days)

    def index(self, d: date) -> int:
        return (d - START).days


def _calendar() -> _Calendar:
    days = np.arange(np.datetime64(START, "D"), np.datetime64(END, "D") + 1)
    ordinal = days.astype(np.int64)
    year = days.astype("datetime64[Y]").astype(np.int64) + 1970
    dst = np.zeros(len(days), dtype=np.int64)
    for y in np.unique(year):
        lo = np.datetime64(_last_sunday(int(y), 3), "D")
        hi = np.datetime64(_last_sunday(int(y), 10), "D")
        dst[(days >= lo) & (days < hi)] = 1
    return _Calendar(
        days=days,
        day_s=ordinal * 86_400,
        dow=(ordinal + 3) % 7,  # 1970-01-01 was a Thursday
        month=days.astype("datetime64[M]").astype(np.int64) % 12 + 1,
        year=year,
        t_years=(ordinal - ordinal[0]) / 365.25,
        dst=dst,
    )


def _yearly_level(cal: _Calendar) -> np.ndarray:
    doy = (cal.days - cal.days.astype("datetime64[Y]")).astype(np.int64)
    anchors = np.array([15.2 + 30.44 * i for i in range(12)])
    return np.interp(doy, anchors, np.array(_MONTH_LEVEL), period=365.25)


def _order_rates(rng: np.random.Generator, cal: _Calendar) -> tuple[np.ndarray, np.ndarray]:
    """Expected orders per (day, store, channel): returns (rates with anomalies, rates without)."""
    n_s, n_c = len(STORES), len(CHANNELS)
    app_share = 0.07 + 0.05 * cal.t_years
    share = np.stack([1 - 0.33 - app_share, np.full(cal.n, 0.33), app_share], axis=1)  # (D, C)
    level = np.exp(_GROWTH * cal.t_years) * _yearly_level(cal) * rng.lognormal(0.0, 0.06, cal.n)
    dow = np.array([_DOW[c] for c in CHANNELS]).T[cal.dow]  # (D, C)
    holiday = np.ones((cal.n, n_c))
    for h in HOLIDAYS:
        holiday[cal.index(h["date"])] = _HOLIDAY_EFFECT[h["name"]]
    base = np.array([_BASE_RATE[s.format] for s in STORES])
    per_store = (level[:, None] * np.ones(n_s))[:, :, None]  # (D, S, 1)
    rate = base[None, :, None] * per_store * (share * dow * holiday)[:, None]
    for j, s in enumerate(STORES):
        rate[cal.days < np.datetime64(s.opened_at, "D"), j, :] = 0.0
        if s.sunday_closed:
            rate[cal.dow == 6, j, 0] = 0.0
    clean = rate.copy()
    rate[cal.index(OUTAGE_DAY), OUTAGE_STORE_ID - 1, :] *= 0.02
    rate[cal.index(PRICING_ERROR_DAY), :, 1:] *= 1.8  # deal hunters flock to the web shop and app
    return rate, clean


def _sample_local_seconds(rng: np.random.Generator, channel: np.ndarray) -> np.ndarray:
    """Seconds after local midnight, following each channel's hour-of-day profile."""
    out = np.empty(len(channel), dtype=np.int64)
    for c, name in enumerate(CHANNELS):
        mask = channel == c
        p = np.array(_HOURS[name], dtype=float)
        hours = rng.choice(24, size=int(mask.sum()), p=p / p.sum())
        out[mask] = hours * 3600 + rng.integers(0, 3600, size=int(mask.sum()))
    return out


def _products(rng: np.random.Generator) -> dict[str, Any]:
    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "id",
            "sku",
            "name",
            "category",
            "subcategory",
            "brand",
            "unit_price",
            "unit_cost",
            "is_active",
            "category_index",
        )
    }
    for ci, cat in enumerate(CATALOG):
        for sub, ((lo, hi), items) in cat.subcategories.items():
            for item in items:
                pid = len(rows["id"]) + 1
                brand = cat.brands[(pid - 1) % len(cat.brands)]
                price = math.floor(math.exp(rng.uniform(math.log(lo), math.log(hi)))) + 0.99
                margin = rng.uniform(*cat.margin)
                rows["id"].append(pid)
                rows["sku"].append(f"{cat.code}-{pid:04d}")
                rows["name"].append(f"{brand} {item}")
                rows["category"].append(cat.name)
                rows["subcategory"].append(sub)
                rows["brand"].append(brand)
                rows["unit_price"].append(price)
                rows["unit_cost"].append(round(price * (1 - margin), 2))
                rows["is_active"].append(True)
                rows["category_index"].append(ci)
    n = len(rows["id"])
    inactive = rng.choice(np.arange(n), size=8, replace=False)
    inactive = inactive[inactive != PRICING_ERROR_PRODUCT_ID - 1][:7]
    for i in inactive:
        rows["is_active"][i] = False
    rows["popularity"] = list(rng.lognormal(0.0, 0.7, n))
    return rows


def _customers(rng: np.random.Generator, cal: _Calendar) -> dict[str, np.ndarray]:
    region_rate = np.zeros(len(REGIONS) + 1)
    for s in STORES:
        region_rate[s.region_id] += _BASE_RATE[s.format]
    share = region_rate[1:] / region_rate[1:].sum()
    region = rng.choice(np.arange(1, len(REGIONS) + 1), size=_CUSTOMERS, p=share)
    # 35% signed up before the history starts, the rest follow demand (trend and season).
    early = rng.random(_CUSTOMERS) < 0.35
    hist_start = np.datetime64("2021-01-01", "D").astype(np.int64) * 86_400
    signup = np.empty(_CUSTOMERS, dtype=np.int64)
    signup[early] = rng.integers(hist_start, int(cal.day_s[0]), size=int(early.sum()))
    w = np.exp(_GROWTH * cal.t_years) * _yearly_level(cal)
    day = rng.choice(cal.n, size=int((~early).sum()), p=w / w.sum())
    signup[~early] = cal.day_s[day] + rng.integers(6 * 3600, 23 * 3600, size=len(day))
    order = np.argsort(signup, kind="stable")
    region, signup = region[order], signup[order]

    n = _CUSTOMERS
    first = rng.choice(FIRST_NAMES, size=n)
    last = rng.choice(LAST_NAMES, size=n)
    city = np.empty(n, dtype=object)
    country = np.empty(n, dtype=object)
    for r, options in REGION_CITIES.items():
        mask = region == r
        p = np.array([o[2] for o in options])
        pick = rng.choice(len(options), size=int(mask.sum()), p=p / p.sum())
        city[mask] = [options[i][0] for i in pick]
        country[mask] = [options[i][1] for i in pick]
    segment = rng.choice(np.array(SEGMENTS, dtype=object), size=n, p=(0.72, 0.17, 0.11))
    tld = rng.choice(np.array(["com", "org", "net"]), size=n)
    ids = np.arange(1, n + 1)
    email = np.array(
        [
            f"{f.lower()}.{la.lower()}.{i}@example.{t}"
            for f, la, i, t in zip(first, last, ids, tld, strict=True)
        ],
        dtype=object,
    )
    opt_in = rng.random(n) < 0.46
    # Missing attributes on purpose: data-quality reality for NULL handling in the semantic layer.
    segment[rng.random(n) < 0.02] = None
    email[rng.random(n) < 0.03] = None
    city[rng.random(n) < 0.04] = None
    opt_in_null = rng.random(n) < 0.03
    activity = rng.lognormal(0.0, 1.0, n) * np.where(segment == "corporate", 1.5, 1.0)
    return {
        "id": ids,
        "name": np.char.add(np.char.add(first.astype(str), " "), last.astype(str)),
        "email": email,
        "city": city,
        "country": country,
        "region_id": region,
        "segment": segment,
        "marketing_opt_in": opt_in,
        "marketing_opt_in_null": opt_in_null,
        "signed_up_s": signup,
        "activity": activity,
    }


def _pick_customers(
    rng: np.random.Generator, cust: dict[str, np.ndarray], region: np.ndarray, ts: np.ndarray
) -> np.ndarray:
    """Activity-weighted customer of the order's region who had signed up before the order."""
    out = np.empty(len(ts), dtype=np.int64)
    for r, _, _ in REGIONS:
        members = np.flatnonzero(cust["region_id"] == r)
        signup = cust["signed_up_s"][members]
        cum = np.cumsum(cust["activity"][members])
        mask = region == r
        eligible = np.searchsorted(signup, ts[mask], side="right")
        if (eligible == 0).any():
            raise AssertionError("an order precedes every signup of its region")
        u = rng.random(int(mask.sum())) * cum[eligible - 1]
        pos = np.minimum(np.searchsorted(cum, u, side="right"), eligible - 1)
        out[mask] = cust["id"][members[pos]]
    return out


def _generate(seed: int) -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    cal = _calendar()
    store_region = np.array([s.region_id for s in STORES])
    store_offset = np.array([s.utc_offset for s in STORES])
    products = _products(rng)
    cust = _customers(rng, cal)
    rate, clean_rate = _order_rates(rng, cal)

    # Orders: Poisson counts per (day, store, channel), then a local time of day converted to UTC.
    counts = rng.poisson(rate)
    cell = np.repeat(np.arange(counts.size), counts.ravel())
    day_i, store_i, chan_i = np.unravel_index(cell, counts.shape)
    local = _sample_local_seconds(rng, chan_i)
    offset = (store_offset[store_i] + cal.dst[day_i]) * 3600
    ts = cal.day_s[day_i] + local - offset
    # Keep night-time online orders of the first day (of the history, of a store) on that day.
    opened_s = np.array([np.datetime64(s.opened_at, "s").astype(np.int64) for s in STORES])
    ts = np.where(ts < np.maximum(cal.day_s[0], opened_s[store_i]), ts + offset, ts)
    order = np.lexsort((chan_i, store_i, ts))
    store_i, chan_i, ts = store_i[order], chan_i[order], ts[order]
    # From here on "day" is the UTC date of created_at, so anomalies line up with plain SQL by date.
    day_i = (ts - cal.day_s[0]) // 86_400
    n_orders = len(ts)
    customer = _pick_customers(rng, cust, store_region[store_i], ts)
    segment = cust["segment"][customer - 1]

    is_peak = np.isin(
        cal.days[day_i],
        [np.datetime64(h["date"], "D") for h in HOLIDAYS if h["name"] in ("Black Friday", "Cyber Monday")],
    )
    promo = rng.choice([0.05, 0.10, 0.15, 0.20], size=n_orders, p=(0.35, 0.35, 0.2, 0.1))
    deep = rng.choice([0.20, 0.25, 0.30], size=n_orders, p=(0.4, 0.4, 0.2))
    u = rng.random(n_orders)
    discount = np.where(is_peak, np.where(u < 0.75, deep, 0.0), np.where(u < 0.22, promo, 0.0))
    corporate = (segment == "corporate") & (discount == 0) & (rng.random(n_orders) < 0.5)
    discount = np.where(corporate, 0.10, discount)

    # Lines: 1 + Poisson(1.5) per order; product mix depends on the month (seasonal categories).
    n_lines = np.minimum(1 + rng.poisson(1.5, n_orders), 9)
    line_order = np.repeat(np.arange(n_orders), n_lines)
    line_month = cal.month[day_i[line_order]]
    n_products = len(products["id"])
    cat_idx = np.array(products["category_index"])
    price_list = np.array(products["unit_price"])
    popularity = np.array(products["popularity"]) * price_list**-0.35
    inactive = ~np.array(products["is_active"])
    late = cal.days[day_i[line_order]] >= np.datetime64(DISCONTINUED_FROM, "D")
    line_product = np.empty(len(line_order), dtype=np.int64)
    for m in range(1, 13):
        for is_late in (False, True):
            mask = (line_month == m) & (late == is_late)
            w = popularity * np.array([CATALOG[c].popularity * CATALOG[c].months[m - 1] for c in cat_idx])
            if is_late:
                w = np.where(inactive, 0.0, w)  # discontinued products stop selling in June 2026
            line_product[mask] = rng.choice(n_products, size=int(mask.sum()), p=w / w.sum())
    qty = rng.choice([1, 2, 3, 4], size=len(line_order), p=(0.78, 0.15, 0.05, 0.02))
    qty = qty + np.where(segment[line_order] == "corporate", rng.poisson(0.8, len(line_order)), 0)

    # Pricing error: bargain hunters add the mispriced headphones to half of that day's orders.
    pe_day = cal.index(PRICING_ERROR_DAY)
    pe_orders = np.flatnonzero(day_i == pe_day)
    extra = pe_orders[rng.random(len(pe_orders)) < 0.5]
    line_order = np.concatenate([line_order, extra])
    line_product = np.concatenate([line_product, np.full(len(extra), PRICING_ERROR_PRODUCT_ID - 1)])
    qty = np.concatenate([qty, rng.integers(1, 4, len(extra))])

    # One line per (order, product): repeated picks become quantity.
    key, inverse = np.unique(line_order * n_products + line_product, return_inverse=True)
    qty = np.bincount(inverse, weights=qty).astype(np.int64)
    line_order, line_product = key // n_products, key % n_products
    n_items = len(key)

    # Prices and costs at the time of sale: list prices rise ~3% every January.
    years_before = (END.year - cal.year[day_i[line_order]]).astype(float)
    factor = 1.03**years_before
    unit_price = np.floor(price_list[line_product] / factor) + 0.99
    unit_cost = np.round(np.array(products["unit_cost"])[line_product] / factor, 2)
    markdown_p = np.where(cat_idx[line_product] == _CATEGORY_INDEX["Apparel"], 0.12, 0.05)
    markdown = np.where(rng.random(n_items) < markdown_p, rng.choice([0.1, 0.2, 0.3], size=n_items), 0.0)
    line_discount = np.round(1 - (1 - discount[line_order]) * (1 - markdown), 3)
    glitch = (day_i[line_order] == pe_day) & (line_product == PRICING_ERROR_PRODUCT_ID - 1)
    unit_price = np.where(glitch, np.floor(price_list[line_product] / 10) + 0.99, unit_price)  # 19.99
    line_discount = np.where(glitch, 0.0, line_discount)

    # Status: depends on channel, age at the snapshot (end of END), basket and the returns anomaly.
    age_days = (cal.day_s[-1] + 86_400 - ts) / 86_400
    has_cat = np.zeros((len(CATALOG), n_orders), dtype=bool)
    for c in range(len(CATALOG)):
        has_cat[c] = (
            np.bincount(line_order, weights=(cat_idx[line_product] == c).astype(float), minlength=n_orders)
            > 0
        )
    online = chan_i > 0
    p_cancel = np.where(online, np.where(chan_i == 1, 0.035, 0.03), 0.004)
    apparel = has_cat[_CATEGORY_INDEX["Apparel"]]
    p_return = np.where(online, 0.07, 0.03) + np.where(apparel, np.where(online, 0.06, 0.03), 0.0)
    week = (day_i >= cal.index(RETURNS_WEEK[0])) & (day_i <= cal.index(RETURNS_WEEK[1]))
    p_return = np.where(week & has_cat[_CATEGORY_INDEX[ELECTRONICS]], 0.45, p_return)
    returnable = age_days >= np.where(online, 6, 3)
    u = rng.random(n_orders)
    status = np.where(online, np.where(age_days < 2, 0, np.where(age_days < 6, 1, 2)), 2)
    status = np.where(returnable & (u >= p_cancel) & (u < p_cancel + p_return), 3, status)
    status = np.where(u < p_cancel, 4, status)

    # Daily traffic: footfall from expected in-store demand, conversions = actual in-store orders.
    rows = [
        (d, j)
        for j, s in enumerate(STORES)
        for d in range(cal.n)
        if cal.days[d] >= np.datetime64(s.opened_at, "D")
    ]
    t_day = np.array([r[0] for r in rows])
    t_store = np.array([r[1] for r in rows])
    t_sort = np.lexsort((t_store, t_day))
    t_day, t_store = t_day[t_sort], t_store[t_sort]
    conversions = counts[t_day, t_store, 0]
    conv_rate = np.where(np.array([s.format == "flagship" for s in STORES])[t_store], 0.17, 0.22)
    conv_rate = conv_rate * np.select([cal.dow[t_day] == 5, cal.dow[t_day] == 6], [0.88, 0.92], 1.0)
    visits = np.round(rate[t_day, t_store, 0] / conv_rate * rng.lognormal(0.0, 0.08, len(t_day)))
    online_demand = clean_rate[t_day, t_store, 1:].sum(axis=1)
    sessions = np.round(online_demand / 0.032 * rng.lognormal(0.0, 0.1, len(t_day)))
    spike = t_day == cal.index(CAMPAIGN_DAY)
    visits = np.where(spike, np.round(visits * 2.5), visits)
    sessions = np.where(spike, np.round(sessions * 4.5), sessions)
    visits = np.maximum(visits, conversions).astype(np.int64)

    return {
        "regions": {
            "id": [r[0] for r in REGIONS],
            "name": [r[1] for r in REGIONS],
            "code": [r[2] for r in REGIONS],
        },
        "stores": {
            "id": [s.id for s in STORES],
            "name": [s.name for s in STORES],
            "city": [s.city for s in STORES],
            "country": [s.country for s in STORES],
            "region_id": [s.region_id for s in STORES],
            "opened_at": [s.opened_at for s in STORES],
            "format": [s.format for s in STORES],
            "size_sqm": [s.size_sqm for s in STORES],
            "timezone": [s.timezone for s in STORES],
        },
        "customers": {
            "id": cust["id"],
            "name": cust["name"].astype(object),
            "email": cust["email"],
            "city": cust["city"],
            "country": cust["country"],
            "region_id": cust["region_id"],
            "segment": cust["segment"],
            "marketing_opt_in": pa.array(cust["marketing_opt_in"], mask=cust["marketing_opt_in_null"]),
            "signed_up_at": _timestamps(cust["signed_up_s"]),
        },
        "products": {k: v for k, v in products.items() if k not in ("category_index", "popularity")},
        "orders": {
            "id": np.arange(1, n_orders + 1),
            "customer_id": customer,
            "store_id": np.array([s.id for s in STORES])[store_i],
            "created_at": _timestamps(ts),
            "status": np.array(STATUSES, dtype=object)[status],
            "channel": np.array(CHANNELS, dtype=object)[chan_i],
            "discount": discount,
        },
        "order_items": {
            "id": np.arange(1, n_items + 1),
            "order_id": line_order + 1,
            "product_id": line_product + 1,
            "quantity": qty,
            "unit_price": unit_price,
            "unit_cost": unit_cost,
            "discount": line_discount,
        },
        "daily_traffic": {
            "date": cal.days[t_day],
            "store_id": t_store + 1,
            "visits": visits,
            "sessions": sessions.astype(np.int64),
            "conversions": conversions.astype(np.int64),
        },
    }


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype(np.int64) * 1_000_000, type=pa.timestamp("us"))


# SQL types are fixed here (not inferred) so the schema is stable: DECIMAL for money and rates.
SCHEMA: dict[str, list[tuple[str, str]]] = {
    "regions": [("id", "INTEGER"), ("name", "VARCHAR"), ("code", "VARCHAR")],
    "stores": [
        ("id", "INTEGER"),
        ("name", "VARCHAR"),
        ("city", "VARCHAR"),
        ("country", "VARCHAR"),
        ("region_id", "INTEGER"),
        ("opened_at", "DATE"),
        ("format", "VARCHAR"),
        ("size_sqm", "INTEGER"),
        ("timezone", "VARCHAR"),
    ],
    "customers": [
        ("id", "INTEGER"),
        ("name", "VARCHAR"),
        ("email", "VARCHAR"),
        ("city", "VARCHAR"),
        ("country", "VARCHAR"),
        ("region_id", "INTEGER"),
        ("segment", "VARCHAR"),
        ("marketing_opt_in", "BOOLEAN"),
        ("signed_up_at", "TIMESTAMP"),
    ],
    "products": [
        ("id", "INTEGER"),
        ("sku", "VARCHAR"),
        ("name", "VARCHAR"),
        ("category", "VARCHAR"),
        ("subcategory", "VARCHAR"),
        ("brand", "VARCHAR"),
        ("unit_price", "DECIMAL(10,2)"),
        ("unit_cost", "DECIMAL(10,2)"),
        ("is_active", "BOOLEAN"),
    ],
    "orders": [
        ("id", "INTEGER"),
        ("customer_id", "INTEGER"),
        ("store_id", "INTEGER"),
        ("created_at", "TIMESTAMP"),
        ("status", "VARCHAR"),
        ("channel", "VARCHAR"),
        ("discount", "DECIMAL(4,3)"),
    ],
    "order_items": [
        ("id", "INTEGER"),
        ("order_id", "INTEGER"),
        ("product_id", "INTEGER"),
        ("quantity", "INTEGER"),
        ("unit_price", "DECIMAL(10,2)"),
        ("unit_cost", "DECIMAL(10,2)"),
        ("discount", "DECIMAL(4,3)"),
    ],
    "daily_traffic": [
        ("date", "DATE"),
        ("store_id", "INTEGER"),
        ("visits", "INTEGER"),
        ("sessions", "INTEGER"),
        ("conversions", "INTEGER"),
    ],
}


def _arrow(columns: dict[str, Any], names: Sequence[str]) -> pa.Table:
    return pa.table(
        {n: columns[n] if isinstance(columns[n], pa.Array) else pa.array(columns[n]) for n in names}
    )


def generate_demo_data(warehouse_path: str, *, seed: int = 7) -> dict[str, int]:
    """Create or replace the demo tables in the DuckDB file at `warehouse_path`.

    Returns the row count of each table. The same seed always produces identical tables.
    """
    data = _generate(seed)
    Path(warehouse_path).parent.mkdir(parents=True, exist_ok=True)
    con = connect_file(warehouse_path)
    try:
        con.execute("BEGIN")
        for table, columns in SCHEMA.items():
            names = [c for c, _ in columns]
            con.register("_demo_src", _arrow(data[table], names))
            select = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in columns)
            con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT {select} FROM _demo_src')
            con.unregister("_demo_src")
        con.execute("COMMIT")
        return {t: int(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in SCHEMA}
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
