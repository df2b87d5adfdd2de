"""Retrieval fixtures: the real embedding model (loaded once), fixture repositories written
into tmp_path, an embedded Chroma per test and one real Chroma server per session."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from retrieval.config import RetrievalConfig
from retrieval.embed import SentenceEmbedder, load_embedder
from retrieval.retriever import Retriever
from retrieval.store import close_client
from tests.conftest import free_port

RepoFactory = Callable[[dict[str, str]], Path]

UTILS_PY = '''"""Utilities."""
import json


def parse_config(path):
    """Read the JSON configuration file at path and return it as a dict."""
    with open(path) as handle:
        return json.load(handle)


def slugify(text):
    return "-".join(text.lower().split())
'''

APP_PY = '''from pkg.utils import parse_config


class App:
    """The application."""

    def __init__(self, path):
        self.config = parse_config(path)

    def run(self):
        return self.config["name"]
'''

CLI_PY = '''import pkg.utils as utils


def main(argv):
    config = utils.parse_config(argv[1])
    print(config)
'''

SERVER_JS = '''import { parseConfig } from "./config.js";

export function startServer(port) {
  const cfg = parseConfig("server.json");
  return listen(port, cfg);
}
'''

CONFIG_JS = '''export function parseConfig(name) {
  return JSON.parse(readFileSync(name));
}
'''

MAIN_GO = '''package main

import "fmt"

func fibonacci(n int) int {
	if n < 2 {
		return n
	}
	return fibonacci(n-1) + fibonacci(n-2)
}

func main() {
	fmt.Println(fibonacci(10))
}
'''

BASE_REPO = {
    "pkg/utils.py": UTILS_PY,
    "pkg/app.py": APP_PY,
    "pkg/cli.py": CLI_PY,
    "web/server.js": SERVER_JS,
    "web/config.js": CONFIG_JS,
    "go/main.go": MAIN_GO,
    "README.md": "# Demo\n\nA small repository used by the retrieval tests.\n",
}


def write_repo(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoFactory:
    counter = iter(range(1000))

    def make(files: dict[str, str]) -> Path:
        return write_repo(tmp_path / f"repo{next(counter)}", files)

    return make


@pytest.fixture(scope="session")
def embedder() -> SentenceEmbedder:
    return load_embedder("all-MiniLM-L6-v2")


@pytest.fixture
def config(tmp_path: Path) -> RetrievalConfig:
    return RetrievalConfig(chroma_path=tmp_path / "chroma")


@pytest.fixture
def retriever(
    config: RetrievalConfig, tmp_path: Path, embedder: SentenceEmbedder
) -> Iterator[Retriever]:
    with Retriever(config, tmp_path / "data", embedder=embedder) as made:
        yield made


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server (`chroma run`) on a free loopback port, stopped at the end."""
    import chromadb
    from chromadb.config import Settings

    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = (path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; app()",
         "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                probe = chromadb.HttpClient(
                    host="127.0.0.1", port=port, settings=Settings(anonymized_telemetry=False)
                )
                try:
                    probe.heartbeat()
                finally:
                    close_client(probe)
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"chroma server did not start: {(path / 'server.log').read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
