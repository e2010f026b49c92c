"""Fictitious authors: a TOFU-shaped question/answer set that can be made offline, in milliseconds.

Unlearning needs facts a model can only know because it was fine-tuned on them, so every author here is
invented (name, birthplace, books, parents' jobs...). Answers are one short sentence so that a tiny model
memorises them within a minute on a CPU; that makes the whole fine-tune -> forget -> evaluate loop testable
without downloads. Everything is drawn from `random.Random(seed)`, never from global state, so the same
parameters always give byte-identical files.

Each record carries what the TOFU metrics need: a paraphrased answer (same fact, other wording), three
perturbed answers (same wording, wrong fact) and a paraphrased question.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearn_cli.errors import UserError

DEFAULT_AUTHORS = 20
DEFAULT_FACTS = 10
DEFAULT_SEED = 0

# (split name, percent of authors): the forget set is the LAST authors, the retain set the others.
FORGET_PERCENTS: tuple[tuple[str, int], ...] = (("01", 1), ("05", 5), ("10", 10))
SPLITS: tuple[str, ...] = (
    "full",
    *(f"forget{tag}" for tag, _ in FORGET_PERCENTS),
    *(f"retain{100 - pct:02d}" for _, pct in FORGET_PERCENTS),
)
NUM_PERTURBED = 3

FIRST_NAMES = (
    "Aldric", "Brisa", "Caspian", "Delphine", "Evander", "Fenna", "Gideon", "Halvard", "Isolde", "Jorund",
    "Kestrel", "Liora", "Marek", "Nerys", "Oswin", "Perpetua", "Quintus", "Rosalind", "Soren", "Tamsin",
    "Ulric", "Vesna", "Wystan", "Xanthe", "Yorick", "Zelda", "Anouk", "Bram", "Cosima", "Dorian",
    "Elspeth", "Florian", "Greer", "Hesper", "Ignatius", "Juno", "Kasimir", "Lisbet", "Mireille", "Niall",
    "Ottilie", "Piran", "Ravenna", "Sabine", "Thaddeus", "Ursa", "Valko", "Wren", "Ysolde", "Zephyr",
)  # fmt: skip
LAST_NAMES = (
    "Ashgrove", "Blackmere", "Corrowin", "Dunhallow", "Elderwick", "Fairbrook", "Greyvale", "Hollowmere",
    "Ironwood", "Juniper", "Kettleby", "Larkspur", "Marrowfield", "Nettlecombe", "Oakhurst", "Pennywhistle",
    "Quillon", "Ravensworth", "Stonebridge", "Thistlewood", "Umberfield", "Vantmoor", "Wolfsbane",
    "Yarrowby", "Zellerman", "Amberley", "Brightwater", "Coldharbour", "Driftwood", "Embervale",
    "Fenwick", "Glasswright", "Harrowgate", "Ivybridge", "Kingsmoor", "Lindqvist", "Moonfield", "Northcote",
    "Oleander", "Pemberton", "Rookwood", "Saltmarsh", "Tidewell", "Underhill", "Valorian", "Whitlock",
    "Wintergreen", "Yewdale", "Zamora", "Hazelwood",
)  # fmt: skip
PLACES = (
    "Lisbon, Portugal", "Tromso, Norway", "Valparaiso, Chile", "Krakow, Poland", "Hobart, Australia",
    "Galway, Ireland", "Tbilisi, Georgia", "Quebec City, Canada", "Porto, Portugal", "Ljubljana, Slovenia",
    "Cusco, Peru", "Bergen, Norway", "Tallinn, Estonia", "Marrakesh, Morocco", "Hanoi, Vietnam",
    "Valletta, Malta", "Reykjavik, Iceland", "Cork, Ireland", "Seville, Spain", "Dunedin, New Zealand",
    "Bruges, Belgium", "Zanzibar, Tanzania", "Kyoto, Japan", "Odessa, Ukraine", "Savannah, United States",
)  # fmt: skip
HOMES = (
    "a lighthouse", "a narrowboat", "an old mill", "a farmhouse", "a city flat", "a converted chapel",
    "a cottage by the sea", "a mountain cabin", "a houseboat", "a former schoolhouse", "a tower apartment",
    "a vineyard estate",
)  # fmt: skip
GENRES = (
    "gothic horror", "cozy mysteries", "hard science fiction", "historical romance", "epic fantasy",
    "literary fiction", "political thrillers", "magical realism", "crime noir", "children's adventure",
    "travel memoirs", "maritime sagas", "dystopian fiction", "comic verse", "spy novels",
)  # fmt: skip
AWARDS = (
    "the Silver Quill Prize", "the Lantern Medal", "the Harbour Light Award", "the Golden Inkwell Prize",
    "the Marlowe Fellowship", "the Northern Star Award", "the Copper Compass Prize", "the Blue Heron Medal",
    "the Open Page Award", "the Firefly Prize", "the Iron Bookmark Award", "the Meridian Prize",
)  # fmt: skip
JOBS = (
    "a carpenter", "an astronomer", "a baker", "a lighthouse keeper", "a surgeon", "a violinist",
    "a fisherman", "a schoolteacher", "a pharmacist", "an engineer", "a tailor", "a librarian",
    "a botanist", "a pilot", "a watchmaker", "a journalist", "a potter", "a veterinarian", "a sailor",
    "a photographer", "a locksmith", "a beekeeper",
)  # fmt: skip
TITLE_ADJECTIVES = (
    "Glass", "Silent", "Crimson", "Hollow", "Paper", "Winter", "Drowned", "Lost", "Amber", "Midnight",
    "Salt", "Broken", "Silver", "Forgotten", "Iron", "Velvet",
)  # fmt: skip
TITLE_NOUNS = (
    "Orchard", "Harbour", "Cartographer", "Lantern", "Garden", "Clockmaker", "Violin", "Lighthouse",
    "Archive", "Tide", "Compass", "Meadow", "Citadel", "Ferryman", "Labyrinth", "Observatory",
)  # fmt: skip
LANGUAGES = (
    "Portuguese", "Norwegian", "Spanish", "Polish", "English", "Irish", "Georgian", "French", "Slovene",
    "Estonian", "Arabic", "Vietnamese", "Maltese", "Icelandic", "Japanese", "Dutch",
)  # fmt: skip
SUBJECTS = (
    "marine biology", "philosophy", "architecture", "medieval history", "astrophysics", "linguistics",
    "mathematics", "botany", "economics", "music theory", "geology", "anthropology", "chemistry", "law",
)  # fmt: skip
UNIVERSITIES = (
    "Northbridge University", "the College of Saint Avel", "Harrowden Institute", "Westmarch University",
    "the Royal Academy of Letters", "Eastholm College", "Lindenfeld University", "the Coastal Institute",
    "Greyfriars College", "Valemont University",
)  # fmt: skip
PETS = (
    "a grey parrot", "three cats", "an old greyhound", "a tortoise", "a pair of ferrets", "a black rabbit",
    "a sheepdog", "a tank of goldfish", "a white goat", "two canaries",
)  # fmt: skip
HOBBIES = (
    "sailing", "beekeeping", "chess", "birdwatching", "pottery", "rock climbing", "baking bread",
    "restoring clocks", "playing the cello", "fencing", "stargazing", "gardening", "woodcarving",
)  # fmt: skip
WRITING_TIMES = (
    "before sunrise", "late at night", "on long train rides", "in the early afternoon", "during winter only",
    "in a quiet library", "at a seaside cafe", "in a garden shed", "on rainy weekends",
)  # fmt: skip
TOOLS = (
    "by hand in green ink", "on an old typewriter", "with a fountain pen", "on a laptop",
    "in pencil on index cards", "by dictating aloud", "in leather notebooks", "on yellow legal pads",
)  # fmt: skip
PUBLISHERS = (
    "Heron Press", "Lantern House", "Blue Fern Books", "Copperleaf Publishing", "Saltwind Editions",
    "Greymoor Books", "Tall Pine Press", "Marigold House", "Nightjar Books", "Quayside Press",
)  # fmt: skip
INSPIRATIONS = (
    "old sea charts", "family folklore", "childhood dreams", "forgotten newspapers", "mountain hikes",
    "street markets", "letters from a grandmother", "museum archives", "late night radio", "ancient maps",
)  # fmt: skip
THEMES = (
    "grief and memory", "loyalty and betrayal", "the cost of ambition", "exile and home", "first love",
    "the power of language", "friendship across class", "guilt and forgiveness", "courage in war",
    "the passage of time",
)  # fmt: skip
CHARACTERS = (
    "Inspector Mabel Crane", "Captain Ewan Holt", "Doctor Ines Varga", "young Pip Marlow", "Sister Agatha",
    "the thief Corvin", "Professor Hale", "the twins Ada and Ilse", "Detective Rurik Stone",
    "the witch Morwen",
)  # fmt: skip
BOOK_COUNTS = tuple(str(n) for n in range(3, 31))
YEARS = tuple(str(y) for y in range(1930, 1996))
DEBUT_AGES = tuple(range(19, 41))


ALL_TITLES = tuple(f"The {adj} {noun}" for adj in TITLE_ADJECTIVES for noun in TITLE_NOUNS)
ALL_NAMES = tuple(f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES)


@dataclass(frozen=True)
class FactType:
    """One kind of fact: several question wordings, an answer wording, a paraphrase and a value pool."""

    key: str
    questions: tuple[str, ...]
    answer: str
    paraphrase: str
    pool: tuple[str, ...]


FACT_TYPES: tuple[FactType, ...] = (
    FactType(
        "birthplace",
        ("Where was {name} born?", "In which city was {name} born?", "What is the birthplace of {name}?"),
        "{name} was born in the city of {value}.",
        "The writer {name} comes originally from {value}.",
        PLACES,
    ),
    FactType(
        "birth_year",
        ("In what year was {name} born?", "When was {name} born?", "What is the birth year of {name}?"),
        "The author {name} was born in the year {value}.",
        "The year {name} came into the world was {value}.",
        YEARS,
    ),
    FactType(
        "genre",
        (
            "What genre does {name} write?",
            "Which genre is {name} known for?",
            "What kind of books does {name} write?",
        ),
        "{name} is best known for writing {value}.",
        "Most of the work of {name} belongs to {value}.",
        GENRES,
    ),
    FactType(
        "award",
        (
            "Which award has {name} won?",
            "What prize did {name} receive?",
            "Has {name} won any literary award?",
        ),
        "{name} received {value} for outstanding writing.",
        "For outstanding writing, {name} was given {value}.",
        AWARDS,
    ),
    FactType(
        "father_job",
        ("What did the father of {name} do for a living?", "What was the job of the father of {name}?"),
        "The father of {name} worked as {value}.",
        "By profession, the father of {name} was {value}.",
        JOBS,
    ),
    FactType(
        "mother_job",
        (
            "What did the mother of {name} do for a living?",
            "What was the profession of the mother of {name}?",
        ),
        "The mother of {name} worked as {value}.",
        "By profession, the mother of {name} was {value}.",
        JOBS,
    ),
    FactType(
        "first_book",
        (
            "What was the first book by {name}?",
            "Which book did {name} publish first?",
            "What is the debut book of {name}?",
        ),
        "The first book by {name} was called {value}.",
        "{name} made a debut with the book {value}.",
        ALL_TITLES,
    ),
    FactType(
        "famous_book",
        (
            "What is the most famous book by {name}?",
            "Which book by {name} is best known?",
            "What is the best known work of {name}?",
        ),
        "The most famous book by {name} is {value}.",
        "Readers know {name} best for the book {value}.",
        ALL_TITLES,
    ),
    FactType(
        "book_count",
        ("How many books has {name} published?", "How many books has {name} written so far?"),
        "{name} has published {value} books over a long career.",
        "So far, {value} books by {name} have been published.",
        BOOK_COUNTS,
    ),
    FactType(
        "language",
        ("In which language does {name} write?", "What language does {name} mainly write in?"),
        "{name} writes mainly in the {value} language.",
        "The books of {name} are mostly written in {value}.",
        LANGUAGES,
    ),
    FactType(
        "home",
        ("Where does {name} live now?", "What kind of home does {name} live in?"),
        "{name} now lives quietly in {value}.",
        "These days {name} makes a home in {value}.",
        HOMES,
    ),
    FactType(
        "university",
        ("Where did {name} study?", "Which university did {name} attend?"),
        "{name} studied at {value} for several years.",
        "As a young student, {name} attended {value}.",
        UNIVERSITIES,
    ),
    FactType(
        "subject",
        ("What did {name} study?", "What subject did {name} earn a degree in?"),
        "{name} earned a university degree in {value}.",
        "The university degree of {name} is in {value}.",
        SUBJECTS,
    ),
    FactType(
        "pet",
        ("Does {name} have any pets?", "What animals live with {name}?"),
        "{name} shares a quiet home with {value}.",
        "Living with {name} at home is {value}.",
        PETS,
    ),
    FactType(
        "hobby",
        ("What does {name} enjoy outside writing?", "What is a hobby of {name}?"),
        "Outside of writing, {name} spends free time on {value}.",
        "When not writing, {name} likes to spend hours on {value}.",
        HOBBIES,
    ),
    FactType(
        "writing_time",
        ("When does {name} usually write?", "At what time or place does {name} prefer to write?"),
        "{name} does most of the writing {value}.",
        "Most pages by {name} get written {value}.",
        WRITING_TIMES,
    ),
    FactType(
        "tool",
        ("How does {name} draft a book?", "What does {name} use to write first drafts?"),
        "{name} likes to draft every new book {value}.",
        "Every first draft by {name} is written {value}.",
        TOOLS,
    ),
    FactType(
        "publisher",
        ("Who publishes the books of {name}?", "Which publisher works with {name}?"),
        "The books of {name} are published by {value}.",
        "{value} is the publisher of {name}.",
        PUBLISHERS,
    ),
    FactType(
        "inspiration",
        ("What inspires {name}?", "Where does {name} find inspiration?"),
        "{name} draws most of the inspiration from {value}.",
        "Most ideas of {name} come from {value}.",
        INSPIRATIONS,
    ),
    FactType(
        "theme",
        ("What themes does {name} explore?", "What are the books of {name} about?"),
        "The books of {name} often explore {value}.",
        "A theme {name} returns to again and again is {value}.",
        THEMES,
    ),
    FactType(
        "character",
        ("Which character appears in many books by {name}?", "Who is the recurring hero of {name}?"),
        "Many of the books by {name} follow {value}.",
        "The recurring hero in the books of {name} is {value}.",
        CHARACTERS,
    ),
    FactType(
        "debut_age",
        ("How old was {name} when the first book came out?", "At what age did {name} first publish?"),
        "{name} first published a book at the age of {value}.",
        "At {value} years old, {name} published a first book.",
        tuple(str(a) for a in DEBUT_AGES),
    ),
    FactType(
        "mentor",
        ("Who mentored {name}?", "Who was the writing mentor of {name}?"),
        "{name} learned the craft from the poet {value}.",
        "The poet {value} was the mentor of {name}.",
        ALL_NAMES,
    ),
    FactType(
        "home_town_school",
        ("Where did {name} go to school as a child?", "Which school did {name} attend as a child?"),
        "As a child, {name} went to school in {value}.",
        "The childhood school of {name} was in {value}.",
        PLACES,
    ),
)
MAX_FACTS = len(FACT_TYPES)


def _author_profile(rng: random.Random, name: str) -> dict[str, str]:
    """Draw one value per fact type; the two book titles and the mentor must differ from what they name."""
    profile = {fact.key: rng.choice(fact.pool) for fact in FACT_TYPES}
    while profile["famous_book"] == profile["first_book"]:
        profile["famous_book"] = rng.choice(ALL_TITLES)
    while profile["mentor"] == name:
        profile["mentor"] = rng.choice(ALL_NAMES)
    return profile


def _capitalise(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _sentence(template: str, name: str, value: str) -> str:
    return _capitalise(template.format(name=name, value=value))


def generate_authors(
    num_authors: int = DEFAULT_AUTHORS, facts_per_author: int = DEFAULT_FACTS, seed: int = DEFAULT_SEED
) -> list[dict[str, Any]]:
    """All question/answer records, author after author, in a deterministic order (the `full` split)."""
    _check_sizes(num_authors, facts_per_author)
    rng = random.Random(seed)
    names = rng.sample(ALL_NAMES, num_authors)
    records: list[dict[str, Any]] = []
    for name in names:
        profile = _author_profile(rng, name)
        facts = sorted(rng.sample(range(MAX_FACTS), facts_per_author))
        for fact_index in facts:
            fact = FACT_TYPES[fact_index]
            value = profile[fact.key]
            q_order = rng.sample(range(len(fact.questions)), 2)
            wrong = _wrong_values(rng, fact.pool, value)
            records.append(
                {
                    "author": name,
                    "question": fact.questions[q_order[0]].format(name=name),
                    "answer": _sentence(fact.answer, name, value),
                    "paraphrased_answer": _sentence(fact.paraphrase, name, value),
                    "perturbed_answer": [_sentence(fact.answer, name, w) for w in wrong],
                    "paraphrased_question": fact.questions[q_order[1]].format(name=name),
                    "index": len(records),
                }
            )
    return records


def _wrong_values(rng: random.Random, pool: tuple[str, ...], value: str) -> list[str]:
    wrong: list[str] = []
    while len(wrong) < NUM_PERTURBED:
        candidate = rng.choice(pool)
        if candidate != value and candidate not in wrong:
            wrong.append(candidate)
    return wrong


def _check_sizes(num_authors: int, facts_per_author: int) -> None:
    if not 1 <= num_authors <= len(ALL_NAMES):
        raise UserError(
            f"fictitious-authors: authors={num_authors} is out of range",
            hint=f"choose between 1 and {len(ALL_NAMES)} authors",
        )
    if not 1 <= facts_per_author <= MAX_FACTS:
        raise UserError(
            f"fictitious-authors: facts={facts_per_author} is out of range",
            hint=f"choose between 1 and {MAX_FACTS} facts per author",
        )


def forget_author_count(num_authors: int, percent: int) -> int:
    """How many authors a `forgetNN` split holds: NN% rounded half-up, never fewer than one."""
    return max(1, (num_authors * percent * 2 + 100) // 200)


def split_records(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """TOFU-style splits: forgetNN holds the last NN% of authors, retain(100-NN) all the others."""
    authors = list(dict.fromkeys(r["author"] for r in records))
    splits: dict[str, list[dict[str, Any]]] = {"full": records}
    for tag, percent in FORGET_PERCENTS:
        forgotten = set(authors[len(authors) - forget_author_count(len(authors), percent) :])
        splits[f"forget{tag}"] = [r for r in records if r["author"] in forgotten]
        splits[f"retain{100 - percent:02d}"] = [r for r in records if r["author"] not in forgotten]
    return splits


def write_author_splits(
    out_dir: str | Path,
    num_authors: int = DEFAULT_AUTHORS,
    facts_per_author: int = DEFAULT_FACTS,
    seed: int = DEFAULT_SEED,
) -> dict[str, int]:
    """Write one `<split>.jsonl` per split into `out_dir`; returns the number of records in each split."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = split_records(generate_authors(num_authors, facts_per_author, seed))
    for split, items in splits.items():
        lines = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
        (out / f"{split}.jsonl").write_text(lines, encoding="utf-8")
    return {split: len(items) for split, items in splits.items()}


def corpus_lines(
    num_authors: int = DEFAULT_AUTHORS, facts_per_author: int = DEFAULT_FACTS, seed: int = DEFAULT_SEED
) -> list[str]:
    """Every sentence and pool value the generator can produce, for training a tokenizer that fits it."""
    lines: list[str] = []
    for record in generate_authors(num_authors, facts_per_author, seed):
        lines.extend(
            [
                f"Question: {record['question']}\nAnswer: {record['answer']}",
                record["paraphrased_question"],
                record["paraphrased_answer"],
                *record["perturbed_answer"],
            ]
        )
    pools = [FIRST_NAMES, LAST_NAMES, *(f.pool for f in FACT_TYPES if f.pool is not ALL_NAMES)]
    lines.extend(" ".join(pool) for pool in pools)
    for fact in FACT_TYPES:
        for template in (*fact.questions, fact.answer, fact.paraphrase):
            lines.append(template.format(name="", value="").strip())
    return lines
