"""Syntax-aware chunks and the symbol map, per language."""

from __future__ import annotations

import pytest

from retrieval.chunking import analyse

SOURCES = {
    "m.py": (
        "import os\nfrom pkg.utils import parse_config\n\n\n@cache\ndef load(path):\n"
        "    return parse_config(path)\n\n\nclass Store:\n    \"\"\"Doc.\"\"\"\n\n"
        "    def get(self, key):\n        return self.db.fetch(key)\n"
    ),
    "m.js": (
        "import { parseConfig } from './utils.js';\n\nexport function load(p) {\n"
        "  return parseConfig(p);\n}\n\nclass Store {\n  get(key) {\n"
        "    return this.db.fetch(key);\n  }\n}\n"
    ),
    "m.ts": (
        "import { parseConfig } from './utils';\n\nexport const load = (p: string): Config =>"
        " parseConfig(p);\n\nexport class Store {\n  get(key: string): Item {\n"
        "    return this.db.fetch(key);\n  }\n}\n"
    ),
    "m.go": (
        "package store\n\nimport \"example.com/app/utils\"\n\nfunc load(p string) Config {\n"
        "\treturn utils.ParseConfig(p)\n}\n\ntype Store struct{}\n\n"
        "func (s *Store) Get(key string) Item {\n\treturn s.db.Fetch(key)\n}\n"
    ),
    "M.java": (
        "package app;\n\nimport app.util.Config;\n\npublic class Store {\n"
        "    Item get(String key) {\n        return db.fetch(key);\n    }\n\n"
        "    static Config load(String p) {\n        return Config.parseConfig(p);\n    }\n}\n"
    ),
    "m.rs": (
        "use crate::utils::parse_config;\n\nfn load(p: &str) -> Config {\n"
        "    parse_config(p)\n}\n\nstruct Store;\n\nimpl Store {\n"
        "    fn get(&self, key: &str) -> Item {\n        self.db.fetch(key)\n    }\n}\n"
    ),
    "m.c": (
        "#include \"utils.h\"\n\nconfig_t load(const char *p) {\n"
        "    return parse_config(p);\n}\n\nitem_t get(store_t *s, const char *key) {\n"
        "    return fetch(s->db, key);\n}\n"
    ),
    "m.cpp": (
        "#include \"utils.hpp\"\n\nConfig load(const std::string& p) {\n"
        "    return utils::parse_config(p);\n}\n\nclass Store {\n public:\n"
        "  Item get(const std::string& key) { return db.fetch(key); }\n};\n"
    ),
}

EXPECTED = {  # (symbol of the loader chunk, its lines), (getter symbol), config name used
    "m.py": (("load", 5, 7), "Store.get", "parse_config"),
    "m.js": (("load", 3, 5), "Store.get", "parseConfig"),
    "m.ts": (("load", 3, 3), "Store.get", "parseConfig"),
    "m.go": (("load", 5, 7), "Get", "ParseConfig"),
    "M.java": (("Store.load", 10, 12), "Store.get", "parseConfig"),
    "m.rs": (("load", 3, 5), "Store.get", "parse_config"),
    "m.c": (("load", 3, 5), "get", "parse_config"),
    "m.cpp": (("load", 3, 5), "Store.get", "parse_config"),
}


@pytest.mark.parametrize("path", sorted(SOURCES))
def test_definitions_become_chunks_with_symbols(path: str) -> None:
    result = analyse(path, SOURCES[path], max_chunk_lines=80, window_lines=40)
    (loader, start, end), getter, used = EXPECTED[path]
    by_symbol = {c.symbol: c for c in result.chunks}
    chunk = by_symbol[loader]
    assert (chunk.start_line, chunk.end_line) == (start, end)
    assert chunk.text.splitlines() == SOURCES[path].splitlines()[start - 1 : end]
    assert getter in by_symbol
    assert {"load", getter.rsplit(".", 1)[-1]} <= result.definitions
    assert used in result.references
    assert "fetch" in {r.lower() for r in result.references}
    assert all(c.language for c in result.chunks)


def test_python_imports_and_top_level_code() -> None:
    result = analyse("m.py", SOURCES["m.py"], max_chunk_lines=80, window_lines=40)
    top = result.chunks[0]
    assert (top.symbol, top.start_line, top.end_line) == (None, 1, 2)
    assert {"os", "pkg", "utils", "parse_config"} <= result.references
    header = next(c for c in result.chunks if c.symbol == "Store")
    assert header.text.startswith("class Store:")


def test_long_definitions_are_split_and_keep_their_name() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(25))
    result = analyse("big.py", f"def big():\n{body}", max_chunk_lines=10, window_lines=40)
    assert [(c.symbol, c.start_line, c.end_line) for c in result.chunks] == [
        ("big", 1, 10), ("big", 11, 20), ("big", 21, 26),
    ]


def test_files_without_a_grammar_use_line_windows() -> None:
    text = "\n".join(f"line {i}" for i in range(1, 96)) + "\n\n\n"
    result = analyse("notes.md", text, max_chunk_lines=80, window_lines=40)
    assert [(c.start_line, c.end_line, c.symbol, c.language) for c in result.chunks] == [
        (1, 40, None, "md"), (41, 80, None, "md"), (81, 95, None, "md"),
    ]
    assert result.definitions == set() and result.references == set()


def test_empty_and_broken_files() -> None:
    assert analyse("e.py", "", max_chunk_lines=80, window_lines=40).chunks == []
    broken = analyse("b.py", "def f(:\n    return 1\n", max_chunk_lines=80, window_lines=40)
    assert broken.chunks and "return 1" in broken.chunks[0].text
