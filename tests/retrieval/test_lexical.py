"""The hybrid re-rank's pieces: identifier-aware tokens, BM25 and the fused order."""

from __future__ import annotations

import pytest

from retrieval.lexical import SYMBOL_WEIGHT, bm25, chunk_tokens, rerank, tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("parse_config", ["pars", "config"]),
        ("parseConfig", ["pars", "config"]),
        ("HTTPServerError", ["http", "server", "error"]),
        ("max_line_len=80", ["max", "lin", "len"]),
        ("utf8", ["utf"]),
        ("Returns the headers of the message", ["header", "messag"]),
        ("def get(self, name): return None", ["get", "nam"]),
        ("x = a_b", []),
    ],
)
def test_tokens_split_identifiers_and_drop_stopwords(text: str, expected: list[str]) -> None:
    assert tokens(text) == expected


def test_prose_and_code_meet_on_the_same_terms() -> None:
    assert set(tokens("Encodes the payloads")) == set(tokens("def encode_payload(payload):"))
    assert tokens("parse parses parsed parsing") == ["pars"] * 4
    assert tokens("entries") == tokens("entry")
    assert tokens("address") == ["address"]  # "ss" is not a plural
    assert tokens("class import self") == []  # language keywords are dropped


def test_chunk_tokens_weight_the_symbol_name() -> None:
    terms = chunk_tokens("def slugify(text):\n    return text", "slugify")
    assert terms.count("slugify") == 1 + SYMBOL_WEIGHT - 1
    assert chunk_tokens("x = 1", None) == []


def test_bm25_prefers_rare_terms_and_shorter_documents() -> None:
    docs = [
        ["read", "config", "file"],
        ["read", "socket"],
        ["read", "file", "file", "stream", "buffer", "chunk", "block", "size"],
        ["write", "log"],
    ]
    scores = bm25(["read", "config"], docs)
    assert scores[0] == max(scores)  # the only one with the rare term
    assert scores[3] == 0.0  # no query term at all
    assert scores[1] > scores[2]  # same match ("read"), the shorter document wins
    assert bm25(["read"], []) == []
    # a term in every document weighs less than one in a single document
    assert bm25(["read"], docs)[1] < bm25(["socket"], docs)[1]


def test_rerank_fuses_cosine_and_words() -> None:
    candidates = [
        ("def format_datetime(dt, usegmt=False): ...", "format_datetime"),
        ("def format_timestamp(timeval, localtime=False): ...", "format_timestamp"),
        ("def parse_date(text): ...", "parse_date"),
    ]
    cosine = [0.62, 0.60, 0.40]
    query = "date string for timeval in localtime"
    assert rerank(query, candidates, cosine) == [1, 0, 2]
    # weight 0 is cosine order; a query sharing no word keeps cosine order too
    assert rerank(query, candidates, cosine, weight=0.0) == [0, 1, 2]
    assert rerank("unrelated prose", candidates, cosine) == [0, 1, 2]
    # equal cosines: the words decide
    assert rerank("parse the text", candidates, [0.5, 0.5, 0.5])[0] == 2
    assert rerank("anything", [], []) == []
