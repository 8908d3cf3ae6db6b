"""Writes the embedded default dataset: customer reviews labelled positive/negative.

The sentences are composed from hand-written, domain-specific phrases so that the set is
varied (products, aspects, negations, contrasts, typos-free but informal language) and
reproducible (fixed seed). Two metadata columns, `source` and `domain`, exist so the
Evaluator has realistic slices; the class balance differs per domain on purpose.

Regenerate with:  python data/generate_reviews.py  (writes data/reviews/reviews.csv)
"""

import csv
import pathlib
import random

ROWS = 2400
SEED = 20261123
OUTPUT = pathlib.Path(__file__).parent / "reviews" / "reviews.csv"

DOMAINS = {
    "electronics": {
        "items": ["laptop", "phone", "headset", "charger", "smart watch", "monitor", "router",
                  "keyboard", "tablet", "bluetooth speaker", "camera", "power bank"],
        "aspects": ["battery life", "screen", "build quality", "sound", "setup", "firmware",
                    "connection", "price", "charging speed", "packaging"],
        "good": ["lasts all day", "is bright and sharp", "feels solid", "is crisp and loud",
                 "took two minutes", "updated without a hitch", "never drops",
                 "is fair for what you get", "is impressively fast", "arrived intact"],
        "bad": ["drains by lunchtime", "has dead pixels", "feels flimsy", "crackles at high volume",
                "was a nightmare", "bricked it twice", "keeps dropping", "is a rip-off",
                "is painfully slow", "was crushed on arrival"],
    },
    "books": {
        "items": ["novel", "cookbook", "biography", "thriller", "textbook", "poetry collection",
                  "fantasy series", "travel guide", "memoir", "children's book"],
        "aspects": ["plot", "writing", "characters", "ending", "pacing", "translation",
                    "illustrations", "recipes", "print quality", "research"],
        "good": ["kept me up all night", "is beautiful", "feel like real people",
                 "made me cry in a good way", "never drags", "reads naturally",
                 "are gorgeous", "actually work", "is excellent", "is meticulous"],
        "bad": ["goes nowhere", "is clumsy", "are cardboard cutouts", "felt rushed",
                "drags for hundreds of pages", "is full of errors", "are blurry",
                "never turn out", "smudges on every page", "is sloppy"],
    },
    "restaurants": {
        "items": ["pizza place", "sushi bar", "bistro", "food truck", "steakhouse", "cafe",
                  "noodle shop", "bakery", "taqueria", "vegan restaurant"],
        "aspects": ["food", "service", "portions", "wait", "staff", "coffee", "dessert",
                    "atmosphere", "prices", "delivery"],
        "good": ["was delicious", "was warm and quick", "are generous", "was short",
                 "were lovely", "is the best in town", "was worth every bite", "is cozy",
                 "are reasonable", "came early and hot"],
        "bad": ["was bland and cold", "was rude", "are tiny", "took over an hour",
                "ignored us", "tasted burnt", "was stale", "is loud and cramped",
                "are outrageous", "arrived cold and late"],
    },
    "hotels": {
        "items": ["hotel", "hostel", "resort", "guesthouse", "motel", "bed and breakfast",
                  "airport hotel", "beach resort"],
        "aspects": ["room", "bed", "breakfast", "check-in", "location", "front desk", "pool",
                    "wifi", "bathroom", "noise"],
        "good": ["was spotless", "was comfortable", "had lots of choice", "was effortless",
                 "is perfect", "went out of their way", "was warm and clean",
                 "was fast everywhere", "was modern", "was never a problem"],
        "bad": ["smelled of smoke", "was lumpy", "ran out by eight", "took forty minutes",
                "is sketchy at night", "was unhelpful", "was closed all week",
                "barely worked", "had mould", "kept us awake"],
    },
    "software": {
        "items": ["app", "password manager", "photo editor", "accounting tool", "VPN",
                  "note-taking app", "video editor", "antivirus", "language course", "game"],
        "aspects": ["interface", "sync", "customer support", "latest update", "performance",
                    "pricing", "onboarding", "export", "search", "documentation"],
        "good": ["is intuitive", "is seamless", "answered within an hour", "fixed everything",
                 "is snappy", "is honest", "was painless", "just works", "finds anything",
                 "is thorough"],
        "bad": ["is confusing", "loses my data", "never replied", "broke everything",
                "is sluggish", "is a bait and switch", "was a maze", "corrupts files",
                "finds nothing", "is outdated"],
    },
    "apparel": {
        "items": ["jacket", "pair of jeans", "running shoes", "dress", "sweater", "backpack",
                  "raincoat", "pair of boots", "t-shirt", "scarf"],
        "aspects": ["fit", "fabric", "stitching", "colour", "sizing", "zipper", "comfort",
                    "waterproofing", "return process", "delivery"],
        "good": ["is perfect", "feels premium", "is neat", "matches the photos",
                 "runs true", "glides smoothly", "is all-day", "kept me dry",
                 "was easy", "was quick"],
        "bad": ["is way off", "pills after one wash", "came apart", "faded in a week",
                "is all over the place", "jammed on day one", "gave me blisters",
                "leaked in light rain", "was a hassle", "took a month"],
    },
}

SOURCES = ["web", "mobile_app", "email", "survey"]
POSITIVE_SHARE = {"electronics": 0.5, "books": 0.6, "restaurants": 0.55, "hotels": 0.45,
                  "software": 0.4, "apparel": 0.55}

POSITIVE_VERDICTS = ["Highly recommend it.", "Would buy again.", "Five stars from me.",
                     "Really happy with it.", "Worth the money.", "I'll be back for sure.",
                     "Exceeded my expectations.", "No complaints at all.", "Great value."]
NEGATIVE_VERDICTS = ["Avoid.", "Would not buy again.", "One star, and that's generous.",
                     "Really disappointed.", "Not worth the money.", "Never again.",
                     "Returned it the same week.", "Save yourself the trouble.",
                     "Complete waste of time."]
POSITIVE_WORDS = ["great", "excellent", "fantastic", "solid", "lovely", "superb", "decent"]
NEGATIVE_WORDS = ["terrible", "awful", "disappointing", "poor", "useless", "dreadful", "mediocre"]
OPENERS = ["", "", "", "Honestly, ", "Update: ", "So, ", "Long-time customer here. ",
           "Bought this as a gift. ", "Second time ordering. ", "Quick review: "]


def _aspect_clause(rng: random.Random, spec: dict, positive: bool) -> str:
    index = rng.randrange(len(spec["aspects"]))
    phrase = (spec["good"] if positive else spec["bad"])[index]
    return f"the {spec['aspects'][index]} {phrase}"


def _sentence(rng: random.Random, domain: str, positive: bool) -> str:
    spec = DOMAINS[domain]
    item = rng.choice(spec["items"])
    main = _aspect_clause(rng, spec, positive)
    minor = _aspect_clause(rng, spec, not positive)
    word = rng.choice(POSITIVE_WORDS if positive else NEGATIVE_WORDS)
    opposite = rng.choice(NEGATIVE_WORDS if positive else POSITIVE_WORDS)
    verdict = rng.choice(POSITIVE_VERDICTS if positive else NEGATIVE_VERDICTS)
    templates = [
        f"This {item} is {word}: {main}. {verdict}",
        f"{main.capitalize()}, and overall the {item} is {word}.",
        f"I expected the {item} to be {opposite}, but {main}. {verdict}",
        f"Sure, {minor}, but {main}, so {verdict[0].lower() + verdict[1:]}",
        f"Not {opposite} at all. {main.capitalize()}.",
        f"{verdict} {main.capitalize()} and the rest of the {item} is {word} too.",
        f"My {item}: {main}. Simply {word}.",
        f"The {item} itself is fine, I guess, but {main}. {verdict}" if not positive else
        f"After a rocky start the {item} won me over: {main}. {verdict}",
        f"Can't say the {item} is {opposite}; {main}.",
        f"{main.capitalize()}. {minor.capitalize()}, though that hardly matters. {verdict}",
    ]
    opener, sentence = rng.choice(OPENERS), rng.choice(templates)
    if opener.endswith(", ") and not sentence.startswith("I "):
        sentence = sentence[0].lower() + sentence[1:]
    return opener + sentence


def main() -> None:
    rng = random.Random(SEED)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    seen = set()
    with OUTPUT.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "source", "domain"])
        while len(seen) < ROWS:
            domain = rng.choice(sorted(DOMAINS))
            positive = rng.random() < POSITIVE_SHARE[domain]
            text = _sentence(rng, domain, positive)
            if text in seen:
                continue
            seen.add(text)
            writer.writerow([text, "positive" if positive else "negative",
                             rng.choice(SOURCES), domain])
    print(f"wrote {len(seen)} rows to {OUTPUT}")


if __name__ == "__main__":
    main()
