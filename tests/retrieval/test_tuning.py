"""Tuning the embedding model on a repository's documented functions: pairs, training, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrieval.config import RetrievalConfig
from retrieval.embed import SentenceEmbedder, load_embedder
from retrieval.tuning import MANIFEST, Pair, collect_pairs
from router.cli.main import main
from tests.retrieval.conftest import RepoFactory

SHAPES_PY = '''"""Geometry helpers."""
import math


def circle_area(radius):
    """Compute the area enclosed by a circle of the given radius."""
    return math.pi * radius ** 2


def hypotenuse(a, b):
    """Length of the longest side of a right triangle with legs a and b."""
    return math.sqrt(a * a + b * b)


class Rectangle:
    def __init__(self, width, height):
        self.width, self.height = width, height

    def perimeter(self):
        """Total length of the four sides of this rectangle."""
        return 2 * (self.width + self.height)

    def is_square(self):
        """Tell whether all four sides of the rectangle have equal length."""
        return self.width == self.height
'''

TEXT_PY = '''def count_vowels(text):
    """Count how many vowels appear in a piece of text."""
    return sum(ch in "aeiou" for ch in text.lower())


def reverse_words(sentence):
    """Return the sentence with the order of its words reversed."""
    return " ".join(reversed(sentence.split()))


def is_palindrome(word):
    """Check if a word reads the same backwards as forwards, ignoring case."""
    w = word.lower()
    return w == w[::-1]


def title_case(sentence):
    """Capitalise the first letter of every word in the sentence."""
    return " ".join(part[:1].upper() + part[1:] for part in sentence.split())
'''

STORE_PY = '''import json
import os


def save_json(path, data):
    """Write the data to a file as pretty-printed JSON, replacing it atomically."""
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def load_json(path, default=None):
    """Read a JSON document from disk, or give the default when the file is missing."""
    if not os.path.exists(path):
        return default
    with open(path) as handle:
        return json.load(handle)


def short(x):
    """Tiny."""
    return x
'''

REPO = {
    "geo/shapes.py": SHAPES_PY,
    "text/words.py": TEXT_PY,
    "io/store.py": STORE_PY,
    "tests/test_words.py": 'def test_it():\n    """A test that must never become a training pair."""\n',
    "broken.py": 'def oops(:\n    """This file does not parse at all."""\n',
    "web/app.js": "/** Add two numbers together and return the sum. */\nfunction add(a, b) {}\n",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def margins(embedder: SentenceEmbedder, pairs: list[Pair]) -> float:
    """Mean over the pairs of cos(docstring, its code) minus its best cos with another code."""
    queries = np.array(embedder.embed([p.query for p in pairs]))
    documents = np.array(embedder.embed([p.document for p in pairs]))
    similarity = queries @ documents.T
    own = np.diag(similarity).copy()
    np.fill_diagonal(similarity, -1.0)
    return float((own - similarity.max(axis=1)).mean())


def test_pairs_are_documented_python_functions_without_their_docstrings(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(REPO)
    pairs = collect_pairs(root, RetrievalConfig(), exclude=["tests/*"])
    by_symbol = {p.symbol: p for p in pairs}
    assert set(by_symbol) == {
        "circle_area", "hypotenuse", "Rectangle.perimeter", "Rectangle.is_square",
        "count_vowels", "reverse_words", "is_palindrome", "title_case", "save_json", "load_json",
    }  # no short docstring, no test file, nothing from the broken file or the JavaScript
    pair = by_symbol["Rectangle.perimeter"]
    assert pair.path == "geo/shapes.py"
    assert pair.query == "Total length of the four sides of this rectangle."
    assert pair.query not in pair.document  # the answer is not in the code the model sees
    assert pair.document.startswith("geo/shapes.py\nRectangle.perimeter\n")
    assert "return 2 * (self.width + self.height)" in pair.document
    assert "test_it" in {p.symbol for p in collect_pairs(root, RetrievalConfig())}


def test_tune_embedder_then_index_and_search_with_it(
    make_repo: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, embedder: SentenceEmbedder,
) -> None:
    monkeypatch.setenv("SMALLCODE_DATA_DIR", str(tmp_path / "data"))
    root = make_repo(REPO)
    out_dir = tmp_path / "tuned"
    code, out, err = run(
        capsys, "tune-embedder", str(root), "--out", str(out_dir), "--exclude", "tests/*",
        "--epochs", "4", "--batch-size", "4", "--learning-rate", "1e-4", "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["pairs"] == 10 and summary["steps"] >= 8
    assert summary["base_model"] == "all-MiniLM-L6-v2"
    assert "loss" in err  # progress on stderr
    manifest = json.loads((out_dir / MANIFEST).read_text())
    assert manifest["pairs"] == 10
    assert not list(tmp_path.glob(".tuned.tmp*"))

    # the tuned model separates each docstring's function from the others more widely
    pairs = collect_pairs(root, RetrievalConfig(), exclude=["tests/*"])
    assert margins(load_embedder(str(out_dir)), pairs) > margins(embedder, pairs) + 0.02

    # and it is a drop-in embedding model for the index
    monkeypatch.setenv("SMALLCODE_RETRIEVAL__EMBEDDING_MODEL", str(out_dir))
    code, out, err = run(capsys, "index", str(root), "--repo", "shapes", "--json",
                         "--no-progress")
    assert code == 0, err
    code, out, err = run(capsys, "search", "area enclosed by a circle", "--repo", "shapes",
                         "--json", "-k", "3")
    assert code == 0, err
    assert "circle_area" in [hit["symbol"] for hit in json.loads(out)]


def test_tune_embedder_refuses_bad_input_and_leaves_nothing(
    make_repo: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    small = make_repo({"a.py": TEXT_PY})  # four documented functions: too few
    out_dir = tmp_path / "tuned"
    code, _, err = run(capsys, "tune-embedder", str(small), "--out", str(out_dir))
    assert code == 1
    assert "found 4 documented Python functions" in err and "at least 8" in err
    assert not out_dir.exists() and not list(tmp_path.glob(".tuned*"))

    code, _, err = run(capsys, "tune-embedder", str(tmp_path / "nowhere"), "--out", str(out_dir))
    assert code == 1 and "does not exist" in err

    code, _, err = run(capsys, "tune-embedder", str(small), "--out", str(out_dir),
                       "--epochs", "0")
    assert code == 1 and "epochs must be above 0" in err

    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    code, _, err = run(capsys, "tune-embedder", str(make_repo(REPO)), "--out", str(out_dir))
    assert code == 1 and "--force" in err
    assert (out_dir / "keep.txt").read_text() == "mine"
    assert "Traceback" not in err
