"""A run's identity: the engine, sandbox, model bytes and library versions its results come from.

Resume compares it with the one recorded in run.json, so that a folder never silently holds
results from two models, engines or sandboxes. Model files are hashed once and the sha256
cached by (path, size, mtime), so a resume does not read a large GGUF file again.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("torch", "transformers", "peft", "llama-cpp-python", "vllm")
SHA_CACHE = "sha256.json"


def package_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def versions() -> dict[str, str | None]:
    """What a session records: Python, pot, Ray and the engine libraries."""
    return {
        "python": platform.python_version(),
        **package_versions(("policy-of-thoughts", *LIBRARIES, "ray")),
    }


def git_commit() -> dict[str, Any] | None:
    """The commit of the source tree `pot` is imported from, and whether it had local edits."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def sha256_file(path: Path, cache_file: Path) -> str:
    """The file's sha256, from `cache_file` when its size and mtime are unchanged."""
    path = path.resolve()
    stat = path.stat()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(str(path))
    if entry and entry["size"] == stat.st_size and entry["mtime_ns"] == stat.st_mtime_ns:
        return entry["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    cache[str(path)] = {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": digest.hexdigest(),
    }
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    staging = cache_file.with_name(f"{cache_file.name}.{os.getpid()}")
    staging.write_text(json.dumps(cache, indent=0))
    os.replace(staging, cache_file)  # concurrent writers: the last one wins, each entry is valid
    return digest.hexdigest()


def model_identity(model: str) -> dict[str, Any]:
    """The model's name and a sha256 of its bytes: the GGUF file of an embedded model, every
    file of a model directory; a Hub id is recorded by name (its files are not local)."""
    from pot.policy.models import ModelNotFoundError, cache_dir, gguf_path

    cache_file = cache_dir() / SHA_CACHE
    try:
        gguf = gguf_path(model)
    except ModelNotFoundError:
        return {"name": model, "gguf_sha256": None}
    if gguf is not None:
        return {"name": model, "gguf_sha256": sha256_file(gguf, cache_file)}
    directory = Path(model).expanduser()
    if not directory.is_dir():
        return {"name": model, "sha256": None}
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(directory)}\0{sha256_file(path, cache_file)}\n".encode())
    return {"name": model, "sha256": digest.hexdigest()}


def run_identity(model: str, engine: str, sandbox: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "engine": engine,
        "sandbox": sandbox,
        "model": model_identity(model),
        "versions": package_versions(LIBRARIES),
    }
