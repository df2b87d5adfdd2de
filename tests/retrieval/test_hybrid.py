"""The hybrid re-rank where a user notices it: a description naming a function's parameters
finds that function first among similarly worded ones (real model, real Chroma)."""

from __future__ import annotations

from retrieval import store as chroma
from retrieval.retriever import Retriever
from retrieval.search import rank
from tests.retrieval.conftest import RepoFactory

DATES_PY = '''import datetime
import time


def format_timestamp(timeval=None, localtime=False, usegmt=False):
    if timeval is None:
        timeval = time.time()
    dt = datetime.datetime.fromtimestamp(timeval, datetime.timezone.utc)
    if localtime:
        dt = dt.astimezone()
        usegmt = False
    return format_datetime(dt, usegmt)


def format_datetime(dt, usegmt=False):
    zone = "GMT" if usegmt else dt.strftime("%z") or "-0000"
    return dt.strftime("%a, %d %b %Y %H:%M:%S ") + zone


def format_date(day, separator="-"):
    return separator.join([str(day.year), f"{day.month:02d}", f"{day.day:02d}"])


def format_duration(seconds, precision=1):
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.{precision}f}s"


def parse_datetime(text):
    return datetime.datetime.strptime(text, "%a, %d %b %Y %H:%M:%S %z")
'''

QUERY = (
    "Return the date as an RFC 2822 string. timeval defaults to now; "
    "localtime and usegmt pick the zone."
)


def test_naming_the_parameters_finds_the_function_first(
    retriever: Retriever, make_repo: RepoFactory
) -> None:
    retriever.index(make_repo({"util/dates.py": DATES_PY}), "dates")

    hits = retriever.search("dates", QUERY, k=3)
    assert hits[0].symbol == "format_timestamp"
    assert (hits[0].path, hits[0].start_line, hits[0].end_line) == ("util/dates.py", 5, 12)
    assert hits[1].symbol == "format_datetime"
    assert all(-1.0 <= hit.score <= 1.0 for hit in hits)  # still the cosine similarity

    # cosine alone puts the look-alike first: this is what the re-rank fixes
    store = chroma.RepoStore.open(retriever.client, "dates")
    [vector] = retriever.embedder.embed([QUERY])
    by_cosine = rank(store, QUERY, vector, 3, hybrid=False)
    assert [h.symbol for h in by_cosine[:2]] == ["format_datetime", "format_timestamp"]
    assert by_cosine[0].score >= by_cosine[1].score
    # the same chunks either way, only their order differs
    assert {h.symbol for h in rank(store, QUERY, vector, 6)} == {
        h.symbol for h in rank(store, QUERY, vector, 6, hybrid=False)
    }


def test_an_unrelated_query_keeps_the_cosine_order(
    retriever: Retriever, make_repo: RepoFactory
) -> None:
    retriever.index(make_repo({"util/dates.py": DATES_PY}), "dates")
    store = chroma.RepoStore.open(retriever.client, "dates")
    query = "zzz qqq"  # no word in common with any chunk
    [vector] = retriever.embedder.embed([query])
    assert rank(store, query, vector, 6) == rank(store, query, vector, 6, hybrid=False)


def test_lexical_weight_zero_in_the_config_gives_the_cosine_order(
    retriever: Retriever, make_repo: RepoFactory
) -> None:
    retriever.index(make_repo({"util/dates.py": DATES_PY}), "dates")
    cosine_only = Retriever(  # the same store and model; the fixture closes the client
        retriever.config.model_copy(update={"lexical_weight": 0.0}), retriever.data_dir,
        client=retriever.client, embedder=retriever.embedder,
    )
    hits = cosine_only.search("dates", QUERY, k=2)
    assert [h.symbol for h in hits] == ["format_datetime", "format_timestamp"]
    assert [h.symbol for h in retriever.search("dates", QUERY, k=2)] == [
        "format_timestamp", "format_datetime",
    ]
