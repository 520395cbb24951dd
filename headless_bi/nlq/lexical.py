"""Phrase → index candidates: exact, fuzzy (typos) and embedding (synonyms the model does not list).

Scores are comparable across the three: exact 1.0, fuzzy ≤ 0.9, embedding ≤ 0.8, so a phrase the model
names wins over a guess, and a longer phrase wins over its parts (see `matcher.select`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import DamerauLevenshtein

from headless_bi.nlq.embeddings import get_embedder
from headless_bi.nlq.index import Entry, Index, ValueEntry
from headless_bi.nlq.text import STOPWORDS


def _fuzzy(query: str, choices: list[str], cutoff: float) -> list[tuple[str, float]]:
    """Close spellings: one swapped pair of letters ('regoin') costs as little as one wrong letter."""
    scorer = DamerauLevenshtein.normalized_similarity if " " not in query else fuzz.ratio
    cut = min(cutoff / 100, 0.8) - 1e-6 if scorer is not fuzz.ratio else cutoff  # one edit in five letters
    found = process.extract(query, choices, scorer=scorer, score_cutoff=cut, limit=3)
    scale = 1.0 if scorer is not fuzz.ratio else 0.01
    return [(choice, score * scale) for choice, score, _ in found]


# Names many members share ('count' of every cube): a phrase on its own says nothing of which one.
GENERIC = frozenset({"count", "number", "total", "sum", "amount", "value", "name", "id", "date", "type"})
EMBED_THRESHOLD = 0.62
MAX_EMBEDDED = 48  # n-grams embedded per question: bounds latency


@dataclass
class Candidate:
    start: int  # token range [start, end)
    end: int
    phrase: str
    score: float
    how: str  # exact | fuzzy | embedding | value | value-fuzzy
    entries: list[Entry] = field(default_factory=list)
    values: list[ValueEntry] = field(default_factory=list)


def lookup(index: Index, grams: list[tuple[int, int, str]]) -> list[Candidate]:
    """Every n-gram's candidates; embeddings only for n-grams without an exact member match."""
    found: list[Candidate] = []
    unexplained: list[tuple[int, int, str]] = []
    for start, end, phrase in grams:
        entries = index.exact.get(phrase)
        if entries:
            found.append(Candidate(start, end, phrase, 1.0, "exact", list(entries)))
        values = index.values.get(phrase)
        if values:
            found.append(Candidate(start, end, phrase, 0.97, "value", values=list(values)))
        if entries or values:
            continue
        demonym = next((v for v in demonyms(phrase) if v in index.values), None)
        if demonym is not None:  # "European nations", "German stores"
            found.append(Candidate(start, end, phrase, 0.95, "value", values=list(index.values[demonym])))
            continue
        alias = _by_alias(index, phrase)
        if alias is not None:  # "average daily footfall": footfall is the visits' own synonym
            found.append(Candidate(start, end, phrase, 0.94, "alias", list(index.exact[alias])))
            continue
        if any(w in STOPWORDS for w in phrase.split()):
            continue  # guesses only for phrases of content words: "customer by nation" is two things
        unexplained.append((start, end, phrase))
        if len(phrase) >= 5:
            for choice, score in _fuzzy(phrase, index.phrases, 86):
                if choice in GENERIC:  # "named" is not a typo of "name"
                    continue
                found.append(Candidate(start, end, phrase, 0.9 * score, "fuzzy", list(index.exact[choice])))
            if len(phrase) >= 6:
                for choice, score in _fuzzy(phrase, index.value_phrases, 90):
                    found.append(
                        Candidate(start, end, phrase, 0.88 * score, "value-fuzzy",
                                  values=list(index.values[choice]))
                    )  # fmt: skip
    embedder = get_embedder()
    if embedder is not None and index.vectors is not None and unexplained:
        todo = [g for g in unexplained if end_len(g) <= 3][:MAX_EMBEDDED]
        if todo:
            vectors = embedder.encode([p for _, _, p in todo])
            sims = vectors @ index.vectors.T
            for (start, end, phrase), row in zip(todo, sims, strict=True):
                best = int(np.argmax(row))
                sim = float(row[best])
                if sim >= EMBED_THRESHOLD:
                    choice = index.phrases[best]
                    found.append(
                        Candidate(start, end, phrase, 0.8 * sim, "embedding", list(index.exact[choice]))
                    )
    return found


_IRREGULAR = {
    "french": "france", "dutch": "netherland", "british": "united kingdom", "uk": "united kingdom",
    "swiss": "switzerland", "swedish": "sweden", "danish": "denmark", "spanish": "spain",
}  # fmt: skip


def demonyms(phrase: str) -> list[str]:
    """Place names an adjective may stand for: 'european' → 'europe', 'german' → 'germany'."""
    out = [_IRREGULAR[phrase]] if phrase in _IRREGULAR else []
    if " " in phrase or len(phrase) < 4:
        return out
    if phrase.endswith("ese"):
        out += [phrase[:-3], phrase[:-3] + "a"]  # japanese, chinese
    if phrase.endswith("ian"):
        out += [
            phrase[:-3] + "ia",
            phrase[:-3] + "a",
            phrase[:-3],
            phrase[:-1],
        ]  # canadian, brazilian, indian
    if phrase.endswith("an"):
        out += [phrase[:-2], phrase[:-1], phrase + "y", phrase[:-2] + "y"]  # european, asian, german, italian
    return out


def _by_alias(index: Index, phrase: str) -> str | None:
    """A longer phrase that names a member once one word is swapped for another name of its member."""
    words = phrase.split()
    if len(words) < 2:
        return None
    for i, w in enumerate(words):
        for other in sorted(index.aliases.get(w, ())):
            swapped = " ".join([*words[:i], other, *words[i + 1 :]])
            if swapped in index.exact:
                return swapped
    return None


def end_len(gram: tuple[int, int, str]) -> int:
    return gram[1] - gram[0]
