"""A small generated sample in the raw public file's shape, for the demo and the tests.

Deterministic (seeded), a few hundred rows across the data set's garment classes and all five
ratings. The text reads like reviews: praise, complaints and negations of either ("not scratchy
at all"), mixed reviews that weigh both sides, openers and closers that come and go; and, as in
the real data, some ratings disagree with their text (:data:`LABEL_NOISE`). So a model learns
from it but no candidate is perfect, and a leaderboard shows differences. It is made here, not
copied from the real data set.
"""

from __future__ import annotations

import csv
import io
import random

from include.pipeline import schema as S

CATEGORIES = {  # class -> (division, department), as in the public file
    "Dresses": ("General", "Dresses"),
    "Knits": ("General", "Tops"),
    "Blouses": ("General", "Tops"),
    "Sweaters": ("General Petite", "Tops"),
    "Pants": ("General", "Bottoms"),
    "Jeans": ("General Petite", "Bottoms"),
    "Fine gauge": ("General", "Tops"),
    "Skirts": ("General", "Bottoms"),
    "Jackets": ("General", "Jackets"),
    "Lounge": ("Initmates", "Intimate"),
    "Swim": ("Initmates", "Intimate"),
    "Outerwear": ("General", "Jackets"),
}
# Phrases by the sentiment they carry; a review mixes them as people do (below).
_PRAISE = [
    "the fabric is soft",
    "the fit is flattering",
    "the color is beautiful",
    "it is true to size",
    "the quality is great",
    "it drapes nicely",
    "I get compliments every time I wear it",
    "it is so comfortable",
]
_COMPLAINTS = [
    "the fabric is cheap and scratchy",
    "it runs very small",
    "the seams ripped after one wash",
    "the color looked nothing like the picture",
    "the fit is boxy and unflattering",
    "it wrinkles if you look at it",
    "the material is thin and see-through",
    "the zipper broke right away",
]
_NEGATED_PRAISE = [  # negation: praise words, a complaint
    "the fabric is not soft at all",
    "it is not true to size",
    "the color is not what I hoped for",
    "I would not call it flattering",
    "it never sat right on me",
]
_NEGATED_COMPLAINTS = [  # negation: complaint words, praise
    "the fabric is not scratchy at all",
    "it does not run small",
    "no wrinkles even after a long day",
    "I have nothing bad to say about the fit",
    "it never looks cheap",
]
_OPENERS = {
    -1: ["I really wanted to love this {item}, but", "Sadly,", "Returned this {item}:", ""],
    0: [
        "This {item} is okay:",
        "Mixed feelings about this {item}.",
        "Not sure about this {item}.",
        "",
    ],
    1: ["I love this {item}!", "Absolutely gorgeous {item}.", "So happy with this {item}:", ""],
}
_CLOSERS = {
    -1: ["Would not recommend.", "Sending it back.", "Save your money.", "Disappointed.", ""],
    0: ["It is just average.", "Might keep it.", "Fine for the price.", "Nothing special.", ""],
    1: ["Highly recommend!", "Buying another color.", "Worth every penny.", "Love it.", ""],
}
_ITEMS = {  # how a review names the garment of each class
    "Dresses": "dress",
    "Knits": "knit top",
    "Blouses": "blouse",
    "Sweaters": "sweater",
    "Pants": "pair of pants",
    "Jeans": "pair of jeans",
    "Fine gauge": "fine-gauge sweater",
    "Skirts": "skirt",
    "Jackets": "jacket",
    "Lounge": "lounge set",
    "Swim": "swimsuit",
    "Outerwear": "coat",
}
_TITLES = {-1: "Disappointed", 0: "It's okay", 1: "Love it"}
RATING_WEIGHTS = {1: 0.15, 2: 0.15, 3: 0.3, 4: 0.15, 5: 0.25}
LABEL_NOISE = 0.15  # share of rows whose rating disagrees with their text, as in real data


def _body(rng: random.Random, sentiment: int) -> str:
    """One review's clauses: praise or a negated complaint for 1, the reverse for -1, both
    sides joined by a hedge for 0."""
    good = rng.choice(_PRAISE + _NEGATED_COMPLAINTS)
    bad = rng.choice(_COMPLAINTS + _NEGATED_PRAISE)
    if sentiment > 0:
        clauses = [good] + ([rng.choice(_PRAISE)] if rng.random() < 0.5 else [])
        return " and ".join(dict.fromkeys(clauses))
    if sentiment < 0:
        clauses = [bad] + ([rng.choice(_COMPLAINTS)] if rng.random() < 0.5 else [])
        return " and ".join(dict.fromkeys(clauses))
    first, second = (good, bad) if rng.random() < 0.5 else (bad, good)
    return f"{first}, {rng.choice(['but', 'although', 'though', 'yet'])} {second}"


def _noisy_rating(rng: random.Random, rating: int) -> int:
    """Mostly the rating; sometimes a neighbouring one across a sentiment boundary."""
    if rng.random() >= LABEL_NOISE:
        return rating
    return {1: 3, 2: 3, 3: rng.choice([2, 4]), 4: 3, 5: 3}[rating]


def rows(n: int = 600, seed: int = 42) -> list[dict]:
    rng = random.Random(seed)
    categories = list(CATEGORIES)
    out = []
    for i in range(n):
        written = rng.choices(list(RATING_WEIGHTS), weights=list(RATING_WEIGHTS.values()))[0]
        sentiment = S.sentiment_of_rating(written)
        rating = _noisy_rating(rng, written)
        category = (
            categories[i % len(categories)] if i < 2 * len(categories) else rng.choice(categories)
        )
        item = _ITEMS[category]
        opener, body = rng.choice(_OPENERS[sentiment]).format(item=item), _body(rng, sentiment)
        if not opener or opener[-1] in ".!":
            body = body[0].upper() + body[1:]
        parts = [
            opener,
            body + ".",
            rng.choice(_CLOSERS[sentiment]),
        ]
        if rng.random() < 0.3:
            parts.append(
                f"I usually wear a size {rng.choice(['XS', 'S', 'M', 'L', 'XL', '2', '4', '6'])}."
            )
        division, department = CATEGORIES[category]
        out.append(
            {
                "Clothing ID": str(1000 + rng.randrange(300)),
                "Age": str(rng.randrange(18, 80)),
                "Title": _TITLES[sentiment],
                S.RAW_TEXT: " ".join(p for p in parts if p),
                S.RAW_RATING: str(rating),
                "Recommended IND": "1" if S.sentiment_of_rating(rating) > 0 else "0",
                "Positive Feedback Count": str(rng.randrange(0, 20)),
                "Division Name": division,
                "Department Name": department,
                S.RAW_CATEGORY: category,
            }
        )
    return out


def csv_bytes(n: int = 600, seed: int = 42) -> bytes:
    """The sample as the public file lays it out: an unnamed index column, then RAW_COLUMNS."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["", *S.RAW_COLUMNS])
    for i, row in enumerate(rows(n, seed)):
        writer.writerow([i, *(row[c] for c in S.RAW_COLUMNS)])
    return buf.getvalue().encode("utf-8")


if __name__ == "__main__":
    import sys

    sys.stdout.buffer.write(csv_bytes())
