"""A small generated sample in the raw public file's shape, for the demo and the tests.

Deterministic (seeded), a few hundred rows across the data set's garment classes and all five
ratings, with review text whose wording follows the rating so a model can learn from it. It is
made here, not copied from the real data set.
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
_OPENERS = {
    -1: [
        "I really wanted to love this {item} but",
        "Very disappointed with this {item}:",
        "Returned this {item} right away because",
        "Sadly this {item} did not work out,",
    ],
    0: [
        "This {item} is okay,",
        "Mixed feelings about this {item}:",
        "The {item} is fine for the price but",
        "Not sure about this {item},",
    ],
    1: [
        "I love this {item}!",
        "Absolutely gorgeous {item},",
        "This {item} is perfect and",
        "So happy with this {item},",
    ],
}
_DETAILS = {
    -1: [
        "the fabric is cheap and scratchy.",
        "it runs very small and the seams ripped after one wash.",
        "the color looked nothing like the picture.",
        "the fit is awful and unflattering.",
    ],
    0: [
        "the fit is a little boxy but wearable.",
        "the color is nice though the material is thin.",
        "it is comfortable but nothing special.",
        "sizing runs a bit large, I may keep it.",
    ],
    1: [
        "the fabric is soft and the fit is flattering.",
        "I get compliments every time I wear it.",
        "true to size, beautiful color, great quality.",
        "so comfortable that I ordered a second one.",
    ],
}
_CLOSERS = {
    -1: [
        "Would not recommend.",
        "Sending it back.",
        "Save your money.",
        "What a waste.",
        "Never again.",
    ],
    0: [
        "It is just average.",
        "Might keep it, not sure.",
        "Okay for lounging at home.",
        "Decent but not great.",
        "Nothing to write home about.",
    ],
    1: [
        "Highly recommend!",
        "Buying it in every color.",
        "My new favorite piece.",
        "Worth every penny.",
        "Five stars from me.",
    ],
}
_TITLES = {-1: "Disappointed", 0: "It's okay", 1: "Love it"}
RATING_WEIGHTS = {1: 0.15, 2: 0.15, 3: 0.3, 4: 0.15, 5: 0.25}


def rows(n: int = 600, seed: int = 42) -> list[dict]:
    rng = random.Random(seed)
    categories = list(CATEGORIES)
    out = []
    for i in range(n):
        rating = rng.choices(list(RATING_WEIGHTS), weights=list(RATING_WEIGHTS.values()))[0]
        sentiment = S.sentiment_of_rating(rating)
        category = (
            categories[i % len(categories)] if i < 2 * len(categories) else rng.choice(categories)
        )
        item = (
            category.lower().rstrip("s") if category not in ("Jeans", "Pants") else category.lower()
        )
        text = " ".join(
            [
                rng.choice(_OPENERS[sentiment]).format(item=item),
                rng.choice(_DETAILS[sentiment]),
                rng.choice(_CLOSERS[sentiment]),
                f"I usually wear a size {rng.choice(['XS', 'S', 'M', 'L', 'XL', '2', '4', '6', '8'])}.",
            ]
        )
        division, department = CATEGORIES[category]
        out.append(
            {
                "Clothing ID": str(1000 + rng.randrange(300)),
                "Age": str(rng.randrange(18, 80)),
                "Title": _TITLES[sentiment],
                S.RAW_TEXT: text,
                S.RAW_RATING: str(rating),
                "Recommended IND": "1" if sentiment > 0 else "0",
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
