"""Write the small text examples the text recipes train on, from templates (deterministic, seed 0).

    python examples/text/make_examples.py          # rewrites reviews.csv, entities.conll, corpus.txt here

- ``reviews.csv``: 600 one-sentence film reviews labelled ``positive`` or ``negative``. Negation
  ("was not good") and contrast ("the acting was dull but the story was wonderful") make the label depend
  on word order, not only on which words occur. (``configs/text_classification.toml``)
- ``entities.conll``: 400 sentences, one ``token label`` per line, BIO tags for people, places and
  organisations. (``configs/tagging.toml``)
- ``corpus.txt``: about 40 KB of simple English prose for the character language model.
  (``configs/char_lm.toml``)

Everything is made up here; nothing is copied from a dataset.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).parent

GOOD = ["good", "great", "wonderful", "moving", "funny", "clever", "beautiful", "gripping", "charming", "superb"]
BAD = ["bad", "dull", "boring", "awful", "clumsy", "tedious", "weak", "messy", "silly", "flat"]
PARTS = ["acting", "story", "music", "ending", "script", "camera work", "dialogue", "cast", "pacing", "plot"]
FILMS = ["film", "movie", "picture", "sequel", "thriller", "comedy", "drama", "documentary"]
ADVERBS = ["really", "very", "quite", "truly", "rather", "so", "pretty", "incredibly"]
LOVED = ["loved", "enjoyed", "adored", "liked", "admired"]
HATED = ["hated", "disliked", "regretted", "endured", "sat through"]
LOVE = ["love", "enjoy", "like", "admire"]
HATE = ["hate", "dislike", "regret", "mind"]


def review(rng: random.Random) -> tuple[str, str]:
    positive = rng.random() < 0.5
    good, bad = rng.choice(GOOD), rng.choice(BAD)
    part, other = rng.sample(PARTS, 2)
    film, adverb = rng.choice(FILMS), rng.choice(ADVERBS)
    form = rng.randrange(6)
    if form == 0:
        text = f"the {film} was {adverb} {good if positive else bad}"
    elif form == 1:  # negation flips the adjective
        text = f"the {part} was not {bad if positive else good}"
    elif form == 2:  # contrast: the clause after "but" decides
        first, second = (bad, good) if positive else (good, bad)
        text = f"the {part} was {first} but the {other} was {adverb} {second}"
    elif form == 3:
        text = f"i {rng.choice(LOVED) if positive else rng.choice(HATED)} this {film}"
    elif form == 4:
        text = f"i did not {rng.choice(HATE) if positive else rng.choice(LOVE)} this {film}"
    else:
        text = f"a {good if positive else bad} {film} with {'a' if positive else 'no'} {good} {part}"
    if rng.random() < 0.3:
        text += rng.choice([" .", " !", " , honestly", " overall"])
    return text.capitalize(), "positive" if positive else "negative"


FIRST = ["Ada", "Alan", "Grace", "Linus", "Marie", "Nikola", "Rosalind", "Emmy", "Carl", "Sofia", "Hedy", "Kurt"]
LAST = ["Lovelace", "Turing", "Hopper", "Pauling", "Curie", "Tesla", "Franklin", "Noether", "Gauss", "Kovalevskaya"]
PLACES = ["Paris", "Berlin", "Lagos", "Lima", "Oslo", "Kyoto", "Cairo", "Quebec", "New York", "Buenos Aires"]
ORGS = ["Acme Corp", "Globex", "Initech", "Stark Industries", "Umbrella", "Wayne Enterprises", "Hooli", "Vandelay"]
VERBS = ["visited", "left", "loves", "moved to", "flew to", "wrote about"]


def entity(kind: str, name: str) -> list[tuple[str, str]]:
    words = name.split()
    return [(w, f"{'B' if i == 0 else 'I'}-{kind}") for i, w in enumerate(words)]


def person(rng: random.Random) -> list[tuple[str, str]]:
    if rng.random() < 0.5:
        return entity("PER", rng.choice(FIRST))
    return entity("PER", f"{rng.choice(FIRST)} {rng.choice(LAST)}")


def words(text: str) -> list[tuple[str, str]]:
    return [(w, "O") for w in text.split()]


def sentence(rng: random.Random) -> list[tuple[str, str]]:
    place, org = entity("LOC", rng.choice(PLACES)), entity("ORG", rng.choice(ORGS))
    form = rng.randrange(5)
    if form == 0:
        return person(rng) + words(rng.choice(VERBS)) + place + words(".")
    if form == 1:
        return person(rng) + words("works for") + org + words("in") + place + words(".")
    if form == 2:
        return org + words("opened an office in") + place + words("last year .")
    if form == 3:
        return words("In") + place + words(",") + person(rng) + words("met") + person(rng) + words(".")
    return words("The new") + org + words("chief is") + person(rng) + words(".")


SUBJECTS = ["the old fox", "a small bird", "the miller", "the river", "a tired horse", "the baker", "the wind",
            "an old woman", "the young king", "a grey cat", "the farmer", "the moon"]
ACTIONS = ["walked slowly to", "looked at", "sang softly to", "ran across", "waited beside", "dreamed of",
           "followed", "called out to", "came back to", "rested near"]
OBJECTS = ["the quiet village", "the green hill", "the deep well", "the dark forest", "the stone bridge",
           "the little house", "the bright sea", "the open field", "the high tower", "the long road"]
ENDINGS = ["and the day was warm.", "while the bells rang.", "before the night came.", "and all was still.",
           "as the rain began.", "and nobody saw it.", "when the morning was young.", "and then went home."]


def story_sentence(rng: random.Random) -> str:
    text = f"{rng.choice(SUBJECTS)} {rng.choice(ACTIONS)} {rng.choice(OBJECTS)} {rng.choice(ENDINGS)}"
    return text[0].upper() + text[1:]


def main() -> None:
    rng = random.Random(0)
    with open(HERE / "reviews.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for _ in range(600):
            writer.writerow(review(rng))
    with open(HERE / "entities.conll", "w", encoding="utf-8") as fh:
        for _ in range(400):
            fh.write("".join(f"{token} {tag}\n" for token, tag in sentence(rng)) + "\n")
    paragraphs = []
    while sum(len(p) for p in paragraphs) < 40_000:
        paragraphs.append(" ".join(story_sentence(rng) for _ in range(rng.randint(3, 6))))
    (HERE / "corpus.txt").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
