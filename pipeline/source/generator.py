"""Deterministic synthetic source data: the tables of data contract §1 with their dirty values.

Every row is a pure function of `(seed, row id)`: it is drawn from its own random generator seeded
with both. Data therefore does not depend on batch size or on how many rows are generated (the
first 1,000 rows of a 1M-row run equal a 1,000-row run), and any chunk can be regenerated alone.

Dirty values follow `DirtyRates`. A story-page pin (`multi-video(story page format)`) always has
the story description placeholder and a broken image source, and often lacks title, tags and user
info too; other pins carry each placeholder independently at a low rate. Posters come from a
fixed Zipf-like pool per category, so popular posters repeat with a stable follower count.
"""

from __future__ import annotations

import uuid
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from random import Random

from pipeline.source import vocabulary as v
from pipeline.source.database import Row

DEFAULT_ROWS = 11_153
DEFAULT_SEED = 42
MAX_ROW_ID = 2**40  # row ids live in the low 40 bits of the per-row generator key

POSTERS_PER_CATEGORY = 2_000
_POSTER_CUM_WEIGHTS: tuple[float, ...] = tuple(
    accumulate(1.0 / (rank + 50) for rank in range(POSTERS_PER_CATEGORY))
)
_CATEGORY_CUM_WEIGHTS: tuple[float, ...] = tuple(accumulate(v.CATEGORY_WEIGHTS.values()))

JOINED_FROM = datetime(2015, 1, 1)
JOINED_UNTIL = datetime(2018, 1, 1)  # exclusive: users joined 2015-2017
POSTED_FROM = datetime(2017, 1, 1)
POSTED_UNTIL = datetime(2023, 1, 1)  # exclusive: posts 2017-2022
MIN_AGE, MAX_AGE = 18, 70


@dataclass(frozen=True)
class DirtyRates:
    """How often each data contract §1 dirty value appears (probabilities per pin)."""

    story_page: float = 0.04
    """Pin is a story page: type `multi-video(story page format)`, the story description
    placeholder and `Image src error.`, plus the three `story_*` shares below."""
    story_no_title: float = 0.5
    story_no_tags: float = 0.7
    story_user_info_error: float = 0.3
    # Independent rates among the other (image or video) pins:
    no_title: float = 0.01
    no_description: float = 0.015
    no_tags: float = 0.02
    user_info_error: float = 0.015
    """`poster_name` and `follower_count` are both `User Info Error` (a failed profile scrape)."""
    image_src_error: float = 0.005
    video: float = 0.12
    """Share of non-story pins that are videos (not a dirty value, but part of the mix)."""

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"DirtyRates.{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True)
class SourceRows:
    """One batch of generated rows, one list per table, tuples in contract column order."""

    pin: list[Row] = field(default_factory=list)
    geo: list[Row] = field(default_factory=list)
    user: list[Row] = field(default_factory=list)

    def as_tables(self) -> dict[str, list[Row]]:
        return {"pin": self.pin, "geo": self.geo, "user": self.user}


@dataclass(frozen=True)
class Poster:
    name: str
    follower_count: str


def _row_key(seed: int, row_id: int) -> int:
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if not 0 <= row_id < MAX_ROW_ID:
        raise ValueError(f"row id must be in [0, 2**40), got {row_id}")
    return (seed << 40) | row_id


def format_follower_count(count: int) -> str:
    """The way Pinterest shows follower counts: `437`, `15k`, `2M`."""
    if count < 1_000:
        return str(count)
    if count < 1_000_000:
        return f"{count // 1_000}k"
    return f"{count // 1_000_000}M"


@lru_cache(maxsize=4 * len(v.CATEGORIES) * POSTERS_PER_CATEGORY)
def poster(seed: int, category: str, rank: int) -> Poster:
    """The poster of a given popularity rank in a category; a pure function of its arguments."""
    rng = Random(f"poster:{seed}:{category}:{rank}")
    first = rng.choices(v.FIRST_NAMES, cum_weights=v.FIRST_NAME_CUM_WEIGHTS)[0]
    last = rng.choices(v.LAST_NAMES, cum_weights=v.LAST_NAME_CUM_WEIGHTS)[0]
    style = rng.random()
    if style < 0.55:
        name = f"{first} {last}"
    elif style < 0.75:
        name = f"{last} {rng.choice(v.POSTER_SUFFIXES)}"
    elif style < 0.9:
        subject = _pick(rng, v.SUBJECTS[category]).split()[-1]
        name = f"The {rng.choice(v.QUALIFIERS)} {subject} {rng.choice(v.POSTER_SUFFIXES)}"
    else:
        name = f"{first} | {rng.choice(v.QUALIFIERS)} {rng.choice(v.SUBJECTS[category])}s"
    # Heavy-tailed audience: median around 5k, a few percent in the millions.
    count = min(int(rng.lognormvariate(8.5, 2.2)), 90_000_000)
    return Poster(name=name, follower_count=format_follower_count(count))


# `rng.choice`/`randint` are several times slower than indexing with `random()`, and generation
# speed is dominated by such calls: the helpers below index with `random()` directly.
def _pick(rng: Random, options: Sequence[str]) -> str:
    return options[int(rng.random() * len(options))]


def _title(rng: Random, subject: str) -> str:
    rnd = rng.random
    template = v.TITLE_TEMPLATES[int(rnd() * len(v.TITLE_TEMPLATES))]
    qualifier = v.QUALIFIERS[int(rnd() * len(v.QUALIFIERS))]
    return template.format(q=qualifier, s=subject, n=5 + int(rnd() * 46), y=2018 + int(rnd() * 6))


def _description(rng: Random, subject: str, category: str) -> str:
    # 1-3 consecutive sentences of the list, from a random start, sharing one set of fillers.
    rnd = rng.random
    sentences = v.DESCRIPTION_SENTENCES
    first, count = int(rnd() * len(sentences)), 1 + int(rnd() * 3)
    fillers = {
        "q": v.QUALIFIERS_LOWER[int(rnd() * len(v.QUALIFIERS_LOWER))],
        "q2": v.QUALIFIERS_LOWER[int(rnd() * len(v.QUALIFIERS_LOWER))],
        "s": subject.lower(),
        "a": v.ADJECTIVES[int(rnd() * len(v.ADJECTIVES))],
        "n": 5 + int(rnd() * 36),
        "y": 2018 + int(rnd() * 6),
        "c": v.CATEGORY_WORDS[category],
    }
    return " ".join(
        sentences[(first + i) % len(sentences)].format_map(fillers) for i in range(count)
    )


def _tags(rng: Random, category: str) -> str:
    rnd = rng.random
    subjects = v.SUBJECTS[category]
    tags: list[str] = []
    for _ in range(3 + int(rnd() * 6)):
        subject = subjects[int(rnd() * len(subjects))]
        form = rnd()
        if form < 0.4:
            tag = f"{subject} {v.TAG_MODIFIERS[int(rnd() * len(v.TAG_MODIFIERS))]}"
        elif form < 0.7:
            tag = f"{v.QUALIFIERS[int(rnd() * len(v.QUALIFIERS))]} {subject}"
        else:
            tag = subject
        if tag not in tags:
            tags.append(tag)
    return ",".join(tags)


def _image_src(rng: Random, kind: str) -> str:
    digest = f"{rng.getrandbits(128):032x}"
    folder = "videos/thumbnails/originals" if kind == v.VIDEO else "originals"
    extension = "jpg" if rng.random() < 0.7 else "png"
    return (
        f"https://i.pinimg.com/{folder}/{digest[:2]}/{digest[2:4]}/{digest[4:6]}/"
        f"{digest}.{extension}"
    )


def _moment(rng: Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=int(rng.random() * (end - start).total_seconds()))


def _coordinate(rng: Random, limit: float) -> float:
    # Six significant digits, as the original (MySQL FLOAT) values look: -5.34445, -177.924.
    return float(f"{rng.uniform(-limit, limit):.6g}")


def generate_row(seed: int, row_id: int, rates: DirtyRates) -> tuple[Row, Row, Row]:
    """The pin, geo and user rows of one id; a pure function of `(seed, row_id, rates)`."""
    rng = Random(_row_key(seed, row_id))
    category = v.CATEGORIES[bisect(_CATEGORY_CUM_WEIGHTS, rng.random() * _CATEGORY_CUM_WEIGHTS[-1])]
    subject = _pick(rng, v.SUBJECTS[category])
    rank = bisect(_POSTER_CUM_WEIGHTS, rng.random() * _POSTER_CUM_WEIGHTS[-1])
    author = poster(seed, category, min(rank, POSTERS_PER_CATEGORY - 1))
    unique_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))

    # Draw every decision up front, in a fixed order, so each row uses the same number of draws
    # for its dirt regardless of which branch it takes.
    draw = rng.random
    story, d_title, d_desc, d_tags, d_user, d_src, d_video = (
        draw(),
        draw(),
        draw(),
        draw(),
        draw(),
        draw(),
        draw(),
    )
    if story < rates.story_page:
        kind = v.STORY_PAGE
        title_missing = d_title < rates.story_no_title
        description = v.NO_DESCRIPTION_STORY
        tags_missing = d_tags < rates.story_no_tags
        user_error = d_user < rates.story_user_info_error
        src_error = True
    else:
        kind = v.VIDEO if d_video < rates.video else v.IMAGE
        title_missing = d_title < rates.no_title
        description = v.NO_DESCRIPTION if d_desc < rates.no_description else ""
        tags_missing = d_tags < rates.no_tags
        user_error = d_user < rates.user_info_error
        src_error = d_src < rates.image_src_error

    title = _title(rng, subject)
    text = _description(rng, subject, category)
    tags = _tags(rng, category)
    image_src = _image_src(rng, kind)
    pin: Row = (
        row_id,
        unique_id,
        v.NO_TITLE if title_missing else title,
        description or text,
        v.USER_INFO_ERROR if user_error else author.name,
        v.USER_INFO_ERROR if user_error else author.follower_count,
        v.NO_TAGS if tags_missing else tags,
        kind,
        v.IMAGE_SRC_ERROR if src_error else image_src,
        0 if src_error else 1,
        f"{v.SAVE_LOCATION_PREFIX}{category}",
        category,
    )

    date_joined = _moment(rng, JOINED_FROM, JOINED_UNTIL)
    posted = _moment(rng, max(POSTED_FROM, date_joined), POSTED_UNTIL)
    geo: Row = (
        row_id,
        posted,
        _coordinate(rng, 90.0),
        _coordinate(rng, 180.0),
        _pick(rng, v.COUNTRIES),
    )

    first = v.FIRST_NAMES[
        bisect(v.FIRST_NAME_CUM_WEIGHTS, rng.random() * v.FIRST_NAME_CUM_WEIGHTS[-1])
    ]
    last = v.LAST_NAMES[bisect(v.LAST_NAME_CUM_WEIGHTS, rng.random() * v.LAST_NAME_CUM_WEIGHTS[-1])]
    # Skewed towards young adults, as a social network's users are (mode 25, median about 36).
    age = min(int(rng.triangular(MIN_AGE, MAX_AGE + 1, 25)), MAX_AGE)
    user: Row = (row_id, first, last, age, date_joined)
    return pin, geo, user


def generate_batch(seed: int, start: int, stop: int, rates: DirtyRates) -> SourceRows:
    """Rows with ids in `[start, stop)`."""
    batch = SourceRows()
    for row_id in range(start, stop):
        pin, geo, user = generate_row(seed, row_id, rates)
        batch.pin.append(pin)
        batch.geo.append(geo)
        batch.user.append(user)
    return batch


def generate(
    rows: int, seed: int = DEFAULT_SEED, rates: DirtyRates | None = None, batch_size: int = 5_000
) -> Iterator[SourceRows]:
    """Batches covering ids `0 .. rows-1`; only one batch is held in memory at a time."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rates = rates or DirtyRates()
    for start in range(0, rows, batch_size):
        yield generate_batch(seed, start, min(start + batch_size, rows), rates)
