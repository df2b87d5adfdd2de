"""Lexical scoring for the hybrid re-rank: identifier-aware tokens and BM25.

Queries are prose ("Return the default executor of the loop") and chunks are code
(``def get_default_executor(self):``), so both sides go through the same tokenizer: words and
identifiers are split at ``_``, digits and camelCase humps, lowercased, stripped of a plain
English suffix and a final 'e' (``encode``, ``encodes``, ``encoded``, ``encoding``: ``encod``),
and English stopwords and common language keywords are dropped. A chunk's symbol name counts
several times, as people name a function by what it does.

BM25 statistics (document frequencies, average length) come from the candidate chunks only:
no index beyond Chroma's is kept, and the candidates are what is re-ranked.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

# words and identifier parts: snake_case splits at '_', camelCase at its humps
# ("HTTPServerError" -> HTTP, Server, Error), digits apart
_HUMP = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

_STOPWORD_TEXT = """
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing done down during each either else
etc few for from further had has have having he her here hers herself him himself his how i
if in into is it its itself just may me might more most must my myself no nor not now of off
on once only or other otherwise our ours out over own same shall she should so some such than
that the their theirs them themselves then there these they this those through thus to too
under until up upon us very was we were what when where whether which while who whom whose
why will with within without would you your yours
def return returns self cls none true false pass class import lambda elif yield async await
var let const function func fn void public private protected static new this null nil
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

SYMBOL_WEIGHT = 3  # a symbol-name token counts this many times in its chunk
K1 = 1.2
B = 0.75


def _stem(token: str) -> str:
    """A light suffix strip that maps plurals, verb forms and a final 'e' onto one term."""
    for suffix in ("ing", "ies", "ed", "es", "s"):
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            if suffix == "ies":
                token = token[:-3] + "y"
            elif not (suffix == "s" and token.endswith("ss")):
                token = token[: -len(suffix)]
            break
    if token.endswith("e") and len(token) > 3:
        token = token[:-1]
    return token


def tokens(text: str) -> list[str]:
    """Identifier-split, lowercased, stemmed tokens of text, stopwords and 1-letter ones out."""
    out = []
    for part in _HUMP.findall(text):
        term = _term(part)
        if term:
            out.append(term)
    return out


@lru_cache(maxsize=65536)
def _term(part: str) -> str:
    """The term for one identifier part, or "" when it is dropped."""
    low = part.lower()
    if len(low) < 2 or low in STOPWORDS or low.isdigit():
        return ""
    return _stem(low)


def chunk_tokens(text: str, symbol: str | None = None) -> list[str]:
    """A chunk's terms: its text, plus its symbol's name weighted ``SYMBOL_WEIGHT`` times."""
    terms = tokens(text)
    if symbol:
        terms += tokens(symbol) * (SYMBOL_WEIGHT - 1)
    return terms


def bm25(query: Sequence[str], documents: Sequence[Sequence[str]]) -> list[float]:
    """BM25 (k1 1.2, b 0.75) of each tokenized document for the tokenized query.

    Document frequencies and the average length are those of ``documents`` themselves; each
    distinct query term counts once.
    """
    if not documents:
        return []
    counts = [Counter(doc) for doc in documents]
    n = len(documents)
    average = sum(len(doc) for doc in documents) / n or 1.0
    terms = set(query)
    frequency = Counter(term for count in counts for term in terms if term in count)
    idf = {
        term: math.log(1.0 + (n - frequency[term] + 0.5) / (frequency[term] + 0.5))
        for term in terms
        if frequency[term]
    }
    scores = []
    for doc, count in zip(documents, counts, strict=True):
        norm = K1 * (1.0 - B + B * len(doc) / average)
        score = 0.0
        for term, weight in idf.items():
            tf = count.get(term, 0)
            if tf:
                score += weight * tf * (K1 + 1.0) / (tf + norm)
        scores.append(score)
    return scores


def rerank(
    query: str,
    candidates: Sequence[tuple[str, str | None]],
    similarities: Sequence[float],
    weight: float = 0.5,
) -> list[int]:
    """Indices of the (text, symbol) candidates, best first, by fused score.

    The fused score is ``(1 - weight) * cosine + weight * bm25``, each min-max scaled over the
    candidates so neither scale dominates; ties keep the candidates' order (their cosine rank).
    """
    lexical = bm25(tokens(query), [chunk_tokens(text, symbol) for text, symbol in candidates])
    fused = [
        (1.0 - weight) * a + weight * b
        for a, b in zip(_scaled(similarities), _scaled(lexical), strict=True)
    ]
    return sorted(range(len(fused)), key=lambda i: -fused[i])


def _scaled(values: Sequence[float]) -> list[float]:
    """Values mapped onto [0, 1] by their minimum and maximum; all 0 when they are equal."""
    low, high = min(values, default=0.0), max(values, default=0.0)
    if high <= low:
        return [0.0] * len(values)
    return [(value - low) / (high - low) for value in values]
