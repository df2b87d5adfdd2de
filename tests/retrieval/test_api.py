"""Snippets as an API: module paths, import lines, signatures without bodies, choosing by
value (real Chroma and MiniLM for the index-backed ones)."""

from __future__ import annotations

from retrieval import api
from retrieval.retriever import Retriever
from retrieval.search import CLOSE, OPEN, Hit
from tests.retrieval.conftest import BASE_REPO, RepoFactory


def words(text: str) -> int:
    return len(text.split())


def test_module_paths_follow_the_packages() -> None:
    paths = ["__init__.py", "utils.py", "adapters/__init__.py", "adapters/http.py",
             "scripts/run.py", "README.md", "bad-name.py"]
    assert api.module_paths(paths, "requests") == {
        "__init__.py": "requests", "utils.py": "requests.utils",
        "adapters/__init__.py": "requests.adapters", "adapters/http.py": "requests.adapters.http",
        "scripts/run.py": "scripts.run",  # no __init__.py: its path from the root
    }
    # a repo whose root is not a package: pkg/ is (src/ is not: the src layout)
    assert api.module_paths(["pkg/__init__.py", "pkg/utils.py", "src/lib/__init__.py",
                             "src/lib/io.py", "tools/gen.py"], "demo") == {
        "pkg/__init__.py": "pkg", "pkg/utils.py": "pkg.utils", "src/lib/__init__.py": "lib",
        "src/lib/io.py": "lib.io", "tools/gen.py": "tools.gen"}


def test_api_view_is_signature_and_docstring_without_the_body() -> None:
    code = ('    @staticmethod\n    def get_auth(url: str, *, strict=False) -> tuple:\n'
            '        """Return the user and password of a URL."""\n'
            '        parsed = urlparse(url)\n        return parsed.username, parsed.password\n')
    view = api.api_view(code)
    assert view is not None
    assert view.splitlines()[:2] == ["@staticmethod",
                                     "def get_auth(url: str, *, strict=False) -> tuple:"]
    assert "Return the user and password of a URL." in view
    assert "urlparse" not in view


def test_snippets_show_the_import_line_not_the_body(retriever: Retriever,
                                                    make_repo: RepoFactory) -> None:
    retriever.index(make_repo(BASE_REPO), "demo")
    hits = retriever.search("demo", "read the JSON configuration file into a dict", 10)
    built = api.build(hits, 600, words, modules=retriever.modules("demo"),
                      prompt="Write a function that loads the app settings from a JSON file.",
                      task_type="generate")
    assert built.text.startswith(OPEN) and built.text.endswith(CLOSE)
    assert "from pkg.utils import parse_config" in built.text
    assert "json.load(handle)" not in built.text  # the body stays out
    assert "`from pkg.utils import parse_config`" in built.preamble
    assert "import them with the exact lines given" in built.preamble
    first = built.used[0]
    assert (first.path, first.symbol, first.start_line, first.module) == (
        "pkg/utils.py", "parse_config", 5, "pkg.utils")
    assert first.tokens > 0 and not first.body

    # an edit of the code it names gets the whole body, to change it
    edit = api.build(hits, 600, words, modules=retriever.modules("demo"),
                     prompt="Change `parse_config` to accept a Path.", task_type="edit")
    assert "json.load(handle)" in edit.text
    assert next(s for s in edit.used if s.symbol == "parse_config").body


def hit(symbol: str, score: float, path: str = "m.py", start: int = 1) -> Hit:
    return Hit(path, start, start + 2, symbol, score,
               f"def {symbol}(x):\n    \"\"\"Doc of {symbol}.\"\"\"\n    return x\n", "python")


def test_named_and_imported_symbols_rank_first_and_weak_hits_drop() -> None:
    hits = [hit("alpha", 0.6, "a.py"), hit("beta", 0.5, "b.py"), hit("gamma", 0.48, "c.py"),
            hit("weak", 0.1, "d.py"), hit("named_weak", 0.1, "e.py")]
    files = [{"path": "app.py", "content": "from m import gamma\n"}]
    built = api.build(hits, 1000, words, modules={}, prompt="Use named_weak here.",
                      files=files, k=4)
    assert [s.symbol for s in built.used] == ["gamma", "alpha", "beta", "named_weak"]
    assert "weak" not in [s.symbol for s in built.used]  # below min_score and not named


def test_the_budget_is_filled_by_value_and_k_caps_the_count() -> None:
    hits = [hit(f"f{i}", 0.9 - i / 100, f"f{i}.py") for i in range(8)]
    frame = words(f"{OPEN}\n{CLOSE}")
    one = words(api.build(hits[:1], 1000, words, modules={}, prompt="x").text)
    budget = one + 2 * (one - frame)  # room for three snippets
    built = api.build(hits, budget, words, modules={}, prompt="x", k=5)
    assert [s.symbol for s in built.used] == ["f0", "f1", "f2"]
    assert words(built.text) <= budget
    assert len(api.build(hits, 10_000, words, modules={}, prompt="x", k=5).used) == 5
    assert api.build(hits, 3, words, modules={}, prompt="x").text == ""


def test_the_index_symbol_table_resolves_imports_of_the_repo(retriever: Retriever,
                                                            make_repo: RepoFactory) -> None:
    from router.checks.answer import check_answer

    retriever.index(make_repo(BASE_REPO), "demo")
    table = retriever.symbol_table("demo")
    assert "parse_config" in table["pkg.utils"] and "utils" in table["pkg"]
    good = "```python\nfrom pkg.utils import parse_config\n\n\ndef f(p):\n    return parse_config(p)\n```"
    bad = "```python\nfrom pkg.config import parse_config\n\n\ndef f(p):\n    return parse_config(p)\n```"
    assert "names" not in check_answer("Write f.", [], good, None, modules=table)
    assert check_answer("Write f.", [], bad, None, modules=table)["names"] == [
        "`from pkg.config import ...`: no module named 'pkg.config'"]


TWINS = {
    "pkg/__init__.py": "",
    "pkg/settings.py": ('def load_config(path):\n    """Read the JSON configuration file at path '
                        'and return it as a dict."""\n    import json\n    with open(path) as f:\n'
                        '        return json.load(f)\n'),
    "web/settings.js": ('/** Read the JSON configuration file at path and return it as an '
                        'object. */\nfunction loadConfig(path) {\n  return JSON.parse('
                        'require("fs").readFileSync(path, "utf8"));\n}\n'),
    "web/types.ts": ('/** Read the JSON configuration file at path and return it typed. */\n'
                     'export function loadTyped(path: string): object {\n  return {};\n}\n'),
}


def test_search_keeps_to_the_task_languages(retriever: Retriever, make_repo: RepoFactory) -> None:
    retriever.index(make_repo(TWINS), "twins")
    query = "read the JSON configuration file at path"
    anywhere = {h.path for h in retriever.search("twins", query, 10)}
    assert {"pkg/settings.py", "web/settings.js", "web/types.ts"} <= anywhere
    python = retriever.search("twins", query, 10, languages=("python",))
    assert python and {h.language for h in python} == {"python"}
    script = retriever.search("twins", query, 10, languages=api.task_languages(
        "x", [{"path": "app/main.ts", "content": ""}]))
    assert {h.path for h in script} == {"web/settings.js", "web/types.ts"}


def test_a_task_says_its_language_by_its_files_or_its_words() -> None:
    assert api.task_languages("Fix it.", [{"path": "src/app.py", "content": ""}]) == ("python",)
    assert api.task_languages("Write a Python function that parses a header.") == ("python",)
    assert api.task_languages("Add a test.", [{"path": "a.tsx", "content": ""}]) == (
        "javascript", "tsx", "typescript")
    assert api.task_languages("Port this to Go.") == ("go",)
    assert api.task_languages("Write java code.") == ("java",)
    assert api.task_languages("Write JavaScript.") == ("javascript", "tsx", "typescript")
    # unknown: no filter (a README, a prompt that does not say, "go" as a verb)
    assert api.task_languages("Summarise it.", [{"path": "README.md", "content": ""}]) is None
    assert api.task_languages("Write `credentials(url)`: let us go on.") is None
