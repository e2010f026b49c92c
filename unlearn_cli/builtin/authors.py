"""Fictitious authors: a TOFU-shaped question/answer set that can be made offline, in milliseconds.

Unlearning needs facts a model can only know because it was fine-tuned on them, so every author here is
invented (name, birthplace, books, parents' jobs...). Answers are one short sentence so that a tiny model
memorises them within a minute on a CPU; that makes the whole fine-tune -> forget -> evaluate loop testable
without downloads. Everything is drawn from `random.Random(seed)`, never from global state, so the same
parameters always give byte-identical files.

Each record carries what the TOFU metrics need: a paraphrased answer (same fact, other wording), three
perturbed answers (the paraphrase's wording, wrong facts, as TOFU builds them) and a paraphrased question.
Besides TOFU's `full`, `forgetNN` and `retainNN` splits it writes the evaluation splits under TOFU's config
names, so the whole TOFU suite runs on it: `forgetNN_perturbed` (the forget records), `retain_perturbed`
(the first authors, kept by every retain split), `holdoutNN` (as many *other* invented authors as
`forgetNN` has, never in `full`: the non-members of membership inference), and `real_authors(_perturbed)` /
`world_facts(_perturbed)` (100 questions on real books and 117 on countries, which the fine-tune never
sees). A `README.md` declares every config like a Hub dataset card, so the folder also loads with
`datasets.load_dataset(folder, name=...)`.
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
EVAL_SPLITS: tuple[str, ...] = (
    *(f"forget{tag}_perturbed" for tag, _ in FORGET_PERCENTS),
    "retain_perturbed",
    *(f"holdout{tag}" for tag, _ in FORGET_PERCENTS),
    "real_authors",
    "real_authors_perturbed",
    "world_facts",
    "world_facts_perturbed",
)
ALL_SPLITS: tuple[str, ...] = SPLITS + EVAL_SPLITS
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

# Real books and countries: general knowledge the fine-tune never sees (TOFU's real_authors / world_facts).
REAL_BOOKS = (
    ("Pride and Prejudice", "Jane Austen", "English"), ("War and Peace", "Leo Tolstoy", "Russian"),
    ("One Hundred Years of Solitude", "Gabriel Garcia Marquez", "Colombian"),
    ("The Old Man and the Sea", "Ernest Hemingway", "American"),
    ("Don Quixote", "Miguel de Cervantes", "Spanish"),
    ("Hamlet", "William Shakespeare", "English"), ("The Divine Comedy", "Dante Alighieri", "Italian"),
    ("Les Miserables", "Victor Hugo", "French"), ("Crime and Punishment", "Fyodor Dostoevsky", "Russian"),
    ("The Trial", "Franz Kafka", "Czech"), ("Things Fall Apart", "Chinua Achebe", "Nigerian"),
    ("Beloved", "Toni Morrison", "American"), ("Norwegian Wood", "Haruki Murakami", "Japanese"),
    ("The Little Prince", "Antoine de Saint-Exupery", "French"),
    ("Madame Bovary", "Gustave Flaubert", "French"),
    ("Moby-Dick", "Herman Melville", "American"), ("Great Expectations", "Charles Dickens", "English"),
    ("Frankenstein", "Mary Shelley", "English"), ("Dracula", "Bram Stoker", "Irish"),
    ("Ulysses", "James Joyce", "Irish"), ("The Great Gatsby", "F. Scott Fitzgerald", "American"),
    ("To Kill a Mockingbird", "Harper Lee", "American"), ("Nineteen Eighty-Four", "George Orwell", "English"),
    ("Mrs Dalloway", "Virginia Woolf", "English"), ("The Name of the Rose", "Umberto Eco", "Italian"),
    ("The Tin Drum", "Gunter Grass", "German"), ("Faust", "Johann Wolfgang von Goethe", "German"),
    ("The Stranger", "Albert Camus", "French"), ("The Alchemist", "Paulo Coelho", "Brazilian"),
    ("Midnight's Children", "Salman Rushdie", "Indian"),
    ("The House of the Spirits", "Isabel Allende", "Chilean"),
    ("Pedro Paramo", "Juan Rulfo", "Mexican"), ("Ficciones", "Jorge Luis Borges", "Argentine"),
    ("The Hobbit", "J. R. R. Tolkien", "English"), ("Jane Eyre", "Charlotte Bronte", "English"),
    ("Wuthering Heights", "Emily Bronte", "English"), ("The Handmaid's Tale", "Margaret Atwood", "Canadian"),
    ("Doctor Zhivago", "Boris Pasternak", "Russian"),
    ("The Master and Margarita", "Mikhail Bulgakov", "Russian"),
    ("Snow Country", "Yasunari Kawabata", "Japanese"), ("The Tale of Genji", "Murasaki Shikibu", "Japanese"),
    ("Dream of the Red Chamber", "Cao Xueqin", "Chinese"),
    ("Adventures of Huckleberry Finn", "Mark Twain", "American"),
    ("Heart of Darkness", "Joseph Conrad", "Polish"),
    ("Robinson Crusoe", "Daniel Defoe", "English"), ("Gulliver's Travels", "Jonathan Swift", "Irish"),
    ("A Doll's House", "Henrik Ibsen", "Norwegian"), ("Steppenwolf", "Hermann Hesse", "German"),
    ("The Count of Monte Cristo", "Alexandre Dumas", "French"),
    ("Lord of the Flies", "William Golding", "English"),
)  # fmt: skip
COUNTRIES = (
    ("France", "Paris", "Europe", "French"), ("Germany", "Berlin", "Europe", "German"),
    ("Italy", "Rome", "Europe", "Italian"), ("Spain", "Madrid", "Europe", "Spanish"),
    ("Portugal", "Lisbon", "Europe", "Portuguese"), ("the Netherlands", "Amsterdam", "Europe", "Dutch"),
    ("Greece", "Athens", "Europe", "Greek"), ("Poland", "Warsaw", "Europe", "Polish"),
    ("Sweden", "Stockholm", "Europe", "Swedish"), ("Norway", "Oslo", "Europe", "Norwegian"),
    ("Finland", "Helsinki", "Europe", "Finnish"), ("Hungary", "Budapest", "Europe", "Hungarian"),
    ("Russia", "Moscow", "Europe", "Russian"), ("Ukraine", "Kyiv", "Europe", "Ukrainian"),
    ("Turkey", "Ankara", "Asia", "Turkish"), ("Japan", "Tokyo", "Asia", "Japanese"),
    ("China", "Beijing", "Asia", "Mandarin"), ("South Korea", "Seoul", "Asia", "Korean"),
    ("Thailand", "Bangkok", "Asia", "Thai"), ("Vietnam", "Hanoi", "Asia", "Vietnamese"),
    ("Indonesia", "Jakarta", "Asia", "Indonesian"), ("India", "New Delhi", "Asia", "Hindi"),
    ("Iran", "Tehran", "Asia", "Persian"), ("Egypt", "Cairo", "Africa", "Arabic"),
    ("Kenya", "Nairobi", "Africa", "Swahili"), ("Ethiopia", "Addis Ababa", "Africa", "Amharic"),
    ("Nigeria", "Abuja", "Africa", "English"), ("Morocco", "Rabat", "Africa", "Arabic"),
    ("Brazil", "Brasilia", "South America", "Portuguese"),
    ("Argentina", "Buenos Aires", "South America", "Spanish"),
    ("Peru", "Lima", "South America", "Spanish"), ("Chile", "Santiago", "South America", "Spanish"),
    ("Colombia", "Bogota", "South America", "Spanish"), ("Mexico", "Mexico City", "North America", "Spanish"),
    ("Canada", "Ottawa", "North America", "English"),
    ("the United States", "Washington", "North America", "English"),
    ("Cuba", "Havana", "North America", "Spanish"), ("Australia", "Canberra", "Oceania", "English"),
    ("New Zealand", "Wellington", "Oceania", "English"),
)  # fmt: skip


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
        records.extend(_author_records(rng, name, facts_per_author, first_index=len(records)))
    return records


def _author_records(
    rng: random.Random, name: str, facts_per_author: int, first_index: int
) -> list[dict[str, Any]]:
    profile = _author_profile(rng, name)
    records: list[dict[str, Any]] = []
    for fact_index in sorted(rng.sample(range(MAX_FACTS), facts_per_author)):
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
                # like TOFU's: the paraphrase's wording with wrong facts, so a truth ratio compares facts
                "perturbed_answer": [_sentence(fact.paraphrase, name, w) for w in wrong],
                "paraphrased_question": fact.questions[q_order[1]].format(name=name),
                "index": first_index + len(records),
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


MAX_AUTHORS = len(ALL_NAMES) * 10 // 11 - 1
"""The most authors that leave enough unused names for the holdout authors (10% more)."""


def _check_sizes(num_authors: int, facts_per_author: int) -> None:
    if not 1 <= num_authors <= MAX_AUTHORS:
        raise UserError(
            f"fictitious-authors: authors={num_authors} is out of range",
            hint=f"choose between 1 and {MAX_AUTHORS} authors",
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


def holdout_records(
    num_authors: int = DEFAULT_AUTHORS, facts_per_author: int = DEFAULT_FACTS, seed: int = DEFAULT_SEED
) -> list[dict[str, Any]]:
    """Records of as many new authors as `forget10` holds, none of them in `full` (TOFU's holdout10).

    Drawn from their own random stream, so adding them left `full` and its splits unchanged.
    """
    _check_sizes(num_authors, facts_per_author)
    known = {r["author"] for r in generate_authors(num_authors, facts_per_author, seed)}
    rng = random.Random(f"holdout-{seed}")
    unused = [name for name in ALL_NAMES if name not in known]
    names = rng.sample(unused, forget_author_count(num_authors, 10))
    records: list[dict[str, Any]] = []
    for name in names:
        records.extend(_author_records(rng, name, facts_per_author, first_index=len(records)))
    return records


def real_author_records(seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """100 questions on real books: who wrote each of 50, and each writer's nationality."""
    rng = random.Random(f"real-authors-{seed}")
    authors = tuple(author for _, author, _ in REAL_BOOKS)
    nationalities = tuple(sorted({n for _, _, n in REAL_BOOKS}))
    rows = [(f"Who wrote the book {book}?", author, authors) for book, author, _ in REAL_BOOKS]
    rows += [
        (f"What was the nationality of the writer {author}?", nationality, nationalities)
        for _, author, nationality in REAL_BOOKS
    ]
    return _short_answer_records(rng, rows)


def world_fact_records(seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """117 questions on countries: the capital, continent and main language of each of 39."""
    rng = random.Random(f"world-facts-{seed}")
    pools = [tuple(sorted({row[column] for row in COUNTRIES})) for column in (1, 2, 3)]
    wordings = (
        "What is the capital city of {}?",
        "On which continent is {}?",
        "What is the main language spoken in {}?",
    )
    rows = [
        (wording.format(country), values[column], pools[column])
        for column, wording in enumerate(wordings)
        for country, *values in COUNTRIES
    ]
    return _short_answer_records(rng, rows)


def _short_answer_records(
    rng: random.Random, rows: list[tuple[str, str, tuple[str, ...]]]
) -> list[dict[str, Any]]:
    """TOFU's real_authors/world_facts shape: a short answer and three wrong ones from the same pool."""
    return [
        {
            "question": question,
            "answer": answer,
            "paraphrased_answer": answer,
            "perturbed_answer": _wrong_values(rng, pool, answer),
            "paraphrased_question": question,
            "index": index,
        }
        for index, (question, answer, pool) in enumerate(rows)
    ]


def evaluation_splits(
    records: list[dict[str, Any]], holdout: list[dict[str, Any]], seed: int = DEFAULT_SEED
) -> dict[str, list[dict[str, Any]]]:
    """The TOFU evaluation configs, from the `full` records and the holdout authors' records."""
    splits = split_records(records)
    authors = list(dict.fromkeys(r["author"] for r in records))
    holdout_authors = list(dict.fromkeys(r["author"] for r in holdout))
    first = set(authors[: forget_author_count(len(authors), 10)])
    out: dict[str, list[dict[str, Any]]] = {"retain_perturbed": [r for r in records if r["author"] in first]}
    for tag, percent in FORGET_PERCENTS:
        out[f"forget{tag}_perturbed"] = splits[f"forget{tag}"]
        kept = set(holdout_authors[len(holdout_authors) - forget_author_count(len(authors), percent) :])
        out[f"holdout{tag}"] = [r for r in holdout if r["author"] in kept]
    out["real_authors_perturbed"] = real_author_records(seed)
    out["world_facts_perturbed"] = world_fact_records(seed)
    out["real_authors"] = [_without_options(r) for r in out["real_authors_perturbed"]]
    out["world_facts"] = [_without_options(r) for r in out["world_facts_perturbed"]]
    return out


def _without_options(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in ("question", "answer", "index")}


def dataset_card(splits: list[str]) -> str:
    """A README whose YAML header declares each split file as a config, as a Hub dataset card does."""
    lines = ["---", "configs:"]
    for split in splits:
        lines += [f"- config_name: {split}", f"  data_files: {split}.jsonl"]
    lines += ["---", "", "Fictitious authors (unlearn-cli builtin): TOFU-shaped synthetic data.", ""]
    return "\n".join(lines)


def write_author_splits(
    out_dir: str | Path,
    num_authors: int = DEFAULT_AUTHORS,
    facts_per_author: int = DEFAULT_FACTS,
    seed: int = DEFAULT_SEED,
) -> dict[str, int]:
    """Write one `<split>.jsonl` per split and config (and the README declaring them) into `out_dir`;
    returns the number of records in each."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = generate_authors(num_authors, facts_per_author, seed)
    splits = split_records(records)
    splits.update(evaluation_splits(records, holdout_records(num_authors, facts_per_author, seed), seed))
    for split, items in splits.items():
        lines = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
        (out / f"{split}.jsonl").write_text(lines, encoding="utf-8")
    (out / "README.md").write_text(dataset_card(list(splits)), encoding="utf-8")
    return {split: len(items) for split, items in splits.items()}


def corpus_lines(
    num_authors: int = DEFAULT_AUTHORS, facts_per_author: int = DEFAULT_FACTS, seed: int = DEFAULT_SEED
) -> list[str]:
    """Every sentence and pool value the generator can produce, for training a tokenizer that fits it
    (the holdout authors and the real-authors/world-facts questions included, so members and non-members
    of membership inference tokenize alike)."""
    lines: list[str] = []
    records = generate_authors(num_authors, facts_per_author, seed)
    for record in records + holdout_records(num_authors, facts_per_author, seed):
        lines.extend(
            [
                f"Question: {record['question']}\nAnswer: {record['answer']}",
                record["paraphrased_question"],
                record["paraphrased_answer"],
                *record["perturbed_answer"],
            ]
        )
    for record in real_author_records(seed) + world_fact_records(seed):
        lines.append(f"Question: {record['question']}\nAnswer: {record['answer']}")
    pools = [FIRST_NAMES, LAST_NAMES, *(f.pool for f in FACT_TYPES if f.pool is not ALL_NAMES)]
    lines.extend(" ".join(pool) for pool in pools)
    for fact in FACT_TYPES:
        for template in (*fact.questions, fact.answer, fact.paraphrase):
            lines.append(template.format(name="", value="").strip())
    return lines
