"""Vosk speech models: the manifest of known models and `cti-bridge models list|fetch`.

This runs as a one-shot CLI command, never inside the daemon's event loop, so the blocking
download, hashing and unzipping below are fine here.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

DEFAULT_MODELS_DIR = Path("/var/lib/cti-bridge/models")
MODELS_DIR_ENV = "CTI_BRIDGE_MODELS"

# Shipped inside the package so an installed cti-bridge (wheel, Docker) knows its models too.
_SHIPPED_MANIFEST = Path(__file__).resolve().parent / "model_manifest.json"

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# Names become directory names under the destination, so no separators or leading dots.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_FIELDS = {"name", "language", "url", "size_bytes", "sha256", "license", "notes"}
_REQUIRED = _FIELDS - {"notes"}
_CHUNK = 1 << 20
_TIMEOUT_SECONDS = 60


class ModelFetchError(Exception):
    """A model could not be listed, downloaded, verified or installed; the message says why."""


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One downloadable model of the manifest."""

    name: str
    language: str
    url: str
    size_bytes: int | None
    sha256: str | None
    license: str
    notes: str = ""


def default_models_dir() -> Path:
    """Where models are installed: $CTI_BRIDGE_MODELS, else /var/lib/cti-bridge/models."""
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def default_manifest_path() -> Path | None:
    """The manifest shipped with the package (cti_bridge/model_manifest.json)."""
    return _SHIPPED_MANIFEST if _SHIPPED_MANIFEST.is_file() else None


def load_manifest(path: Path | None = None) -> list[ModelEntry]:
    """Read and check the manifest of known models.

    Args:
        path: A manifest file; None means the manifest shipped with the package.

    Returns:
        The entries, in file order.

    Raises:
        ModelFetchError: no manifest was found, or it is not valid (the message names the
            file and the entry).
    """
    if path is None:
        path = default_manifest_path()
        if path is None:
            raise ModelFetchError(
                f"no model manifest: {_SHIPPED_MANIFEST} is missing from this installation; "
                "pass --manifest PATH"
            )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelFetchError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ModelFetchError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ModelFetchError(f"{path}: expected an object with a `models` list")
    entries: list[ModelEntry] = []
    for index, raw in enumerate(data["models"]):
        entry = _parse_entry(raw, f"{path}: models[{index}]")
        if any(e.name == entry.name for e in entries):
            raise ModelFetchError(f"{path}: models[{index}]: duplicate name {entry.name!r}")
        entries.append(entry)
    return entries


def _parse_entry(raw: Any, where: str) -> ModelEntry:
    if not isinstance(raw, dict):
        raise ModelFetchError(f"{where}: expected an object")
    unknown, missing = set(raw) - _FIELDS, _REQUIRED - set(raw)
    if unknown:
        raise ModelFetchError(f"{where}: unknown key(s): {', '.join(sorted(unknown))}")
    if missing:
        raise ModelFetchError(f"{where}: missing key(s): {', '.join(sorted(missing))}")
    name, url, size, sha256 = raw["name"], raw["url"], raw["size_bytes"], raw["sha256"]
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ModelFetchError(f"{where}.name: {name!r} is not a plain directory name")
    where = f"{where} ({name})"
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ModelFetchError(f"{where}.url: {url!r} is not an http(s) URL")
    # bool is an int subclass; `true` is not a size.
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise ModelFetchError(f"{where}.size_bytes: {size!r} is not a positive integer or null")
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256)):
        raise ModelFetchError(f"{where}.sha256: {sha256!r} is not 64 lowercase hex digits or null")
    for key in ("language", "license", "notes"):
        if not isinstance(raw.get(key, ""), str):
            raise ModelFetchError(f"{where}.{key}: expected a string")
    return ModelEntry(
        name=name,
        language=raw["language"],
        url=url,
        size_bytes=size,
        sha256=sha256,
        license=raw["license"],
        notes=raw.get("notes", ""),
    )


def fetch_model(
    entry: ModelEntry, dest_dir: Path, *, sha256: str | None = None, progress: bool = True
) -> Path:
    """Download, verify and unpack a model into `dest_dir/<entry.name>`.

    Nothing is downloaded when that directory already holds a model. Everything is staged
    under hidden temporary names inside `dest_dir` and renamed into place at the end, so an
    interrupted fetch never leaves a half-unpacked model where the daemon would load it.

    Args:
        entry: The manifest entry.
        dest_dir: Directory of installed models; created if missing.
        sha256: Expected SHA-256 of the zip, for entries whose manifest has none; if the
            manifest has one too, both must agree.
        progress: Show a download progress bar on stderr.

    Returns:
        The model directory.

    Raises:
        ModelFetchError: no checksum is known, the download failed, the size or checksum
            does not match, the archive is unsafe or is not a Vosk model, or the files
            could not be written.
    """
    expected = _expected_sha256(entry, sha256)
    target = dest_dir / entry.name
    if _is_model_dir(target):
        return target
    if target.exists():
        raise ModelFetchError(
            f"{target} exists but is not a Vosk model (no am/ and conf/ directories); "
            "remove it and fetch again"
        )
    if expected is None:
        raise ModelFetchError(
            f"{entry.name} has no checksum in the manifest, so its download cannot be "
            "verified; get its SHA-256 from a source you trust and pass --sha256 HEX"
        )
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFetchError(
            f"cannot create {dest_dir}: {exc.strerror or exc} (choose another with --dest "
            f"or ${MODELS_DIR_ENV})"
        ) from exc
    archive = _download(entry, dest_dir, expected, progress)
    try:
        return _install(entry, archive, target)
    finally:
        archive.unlink(missing_ok=True)


def _expected_sha256(entry: ModelEntry, given: str | None) -> str | None:
    if given is None:
        return entry.sha256
    normalised = given.strip().lower()
    if not _SHA256_RE.fullmatch(normalised):
        raise ModelFetchError(f"--sha256 must be 64 hex digits, got {given!r}")
    if entry.sha256 is not None and entry.sha256 != normalised:
        # One of the two is wrong, and we cannot tell which: refuse rather than guess.
        raise ModelFetchError(
            f"--sha256 {normalised} disagrees with the manifest's {entry.sha256} for {entry.name}"
        )
    return normalised


def _is_model_dir(path: Path) -> bool:
    return (path / "am").is_dir() and (path / "conf").is_dir()


def _download(entry: ModelEntry, dest_dir: Path, expected: str, progress: bool) -> Path:
    """Stream the zip to a temporary file in dest_dir, hashing it on the way."""
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - outlives this block on success
            dir=dest_dir, prefix=f".{entry.name}.", suffix=".zip.part", delete=False
        )
    except OSError as exc:
        raise ModelFetchError(f"cannot write in {dest_dir}: {exc.strerror or exc}") from exc
    part = Path(handle.name)
    digest = hashlib.sha256()
    received = 0
    try:
        request = urllib.request.Request(entry.url, headers={"User-Agent": "cti-bridge models"})
        with handle, urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:
            announced = _content_length(response.headers.get("Content-Length"))
            with tqdm(
                total=announced or entry.size_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=entry.name,
                file=sys.stderr,
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    # Stop early rather than fill the disk from a wrong or hostile URL.
                    if entry.size_bytes is not None and received > entry.size_bytes:
                        raise ModelFetchError(f"{entry.url}: more than the expected {entry.size_bytes} bytes")
                    digest.update(chunk)
                    handle.write(chunk)
                    bar.update(len(chunk))
        # urllib returns a short body without complaint when the connection drops.
        if announced is not None and received != announced:
            raise ModelFetchError(f"{entry.url}: download cut short: {received} of {announced} bytes")
        if entry.size_bytes is not None and received != entry.size_bytes:
            raise ModelFetchError(
                f"{entry.url}: size mismatch: expected {entry.size_bytes} bytes, got {received}"
            )
        got = digest.hexdigest()
        if got != expected:
            raise ModelFetchError(
                f"{entry.url}: checksum mismatch: expected sha256 {expected}, got {got}; "
                "the download was discarded"
            )
    except urllib.error.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise ModelFetchError(f"{entry.url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        part.unlink(missing_ok=True)
        raise ModelFetchError(f"{entry.url}: download failed: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        part.unlink(missing_ok=True)
        raise ModelFetchError(f"{entry.url}: download failed: {exc}") from exc
    except BaseException:
        # Includes KeyboardInterrupt: a partial download must not stay behind.
        part.unlink(missing_ok=True)
        raise
    return part


def _content_length(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _install(entry: ModelEntry, archive: Path, target: Path) -> Path:
    """Unpack into a temporary directory beside target, check it, then rename it into place."""
    try:
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{entry.name}.", suffix=".unpacking"))
    except OSError as exc:
        raise ModelFetchError(f"cannot write in {target.parent}: {exc.strerror or exc}") from exc
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                _check_members(zf, entry.name)
                zf.extractall(staging)
        except zipfile.BadZipFile as exc:
            raise ModelFetchError(f"{entry.url}: not a valid zip archive: {exc}") from exc
        unpacked = staging / entry.name
        if not _is_model_dir(unpacked):
            raise ModelFetchError(
                f"{entry.url}: not a Vosk model: {entry.name}/ has no am/ and conf/ directories"
            )
        try:
            # Same filesystem (staging is inside dest_dir), so the rename is atomic.
            unpacked.rename(target)
        except OSError as exc:
            if _is_model_dir(target):  # another fetch of the same model finished first
                return target
            raise ModelFetchError(f"cannot move the model to {target}: {exc}") from exc
        return target
    except OSError as exc:
        raise ModelFetchError(f"cannot unpack {entry.name} into {target.parent}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_members(zf: zipfile.ZipFile, top: str) -> None:
    """Refuse zip-slip paths and anything outside the single `top/` folder.

    zipfile.extractall would silently rewrite `../` and absolute names; an archive that
    contains them is not the one we expect, so it is rejected instead.
    """
    outside: set[str] = set()
    for info in zf.infolist():
        name = info.filename.replace("\\", "/")
        if name.startswith("/") or re.match(r"[A-Za-z]:", name):
            raise ModelFetchError(f"unsafe archive: absolute path {info.filename!r}")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise ModelFetchError(f"unsafe archive: path escapes the folder: {info.filename!r}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ModelFetchError(f"unsafe archive: symbolic link {info.filename!r}")
        if not parts or parts[0] != top:
            outside.add(parts[0] if parts else info.filename)
    if outside:
        raise ModelFetchError(
            f"unexpected archive layout: everything should be in {top}/, found {', '.join(sorted(outside))}"
        )


def main_list(manifest: Sequence[ModelEntry]) -> str:
    """The manifest as a printable table, with how to fetch an entry."""
    columns = ("NAME", "LANG", "SIZE", "SHA256", "LICENSE")
    rows = [
        (
            e.name,
            e.language,
            _size(e.size_bytes),
            e.sha256[:16] + "..." if e.sha256 else "none: needs --sha256",
            e.license,
        )
        for e in manifest
    ]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in (columns, *rows)
    ]
    lines += ["", "fetch: cti-bridge models fetch NAME [--dest DIR] [--sha256 HEX]"]
    return "\n".join(lines)


def _size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "?"
    return f"{size_bytes / (1 << 20):.1f} MiB"


def run_models_command(
    action: str,
    name: str | None,
    dest: Path | None,
    sha256: str | None,
    manifest: Path | None,
) -> int:
    """`cti-bridge models list` and `cti-bridge models fetch NAME`.

    Args:
        action: "list" or "fetch".
        name: The model to fetch (fetch only).
        dest: Models directory; None means $CTI_BRIDGE_MODELS or /var/lib/cti-bridge/models.
        sha256: Expected checksum, required for entries whose manifest has none.
        manifest: Manifest file; None means the manifest shipped with the package.

    Returns:
        0 on success, 1 on error (the message is printed on stderr).
    """
    try:
        entries = load_manifest(manifest)
        if action == "list":
            print(main_list(entries))
            return 0
        if action != "fetch":
            raise ModelFetchError(f"unknown action {action!r}: use list or fetch")
        if not name:
            raise ModelFetchError("fetch needs a model NAME (see `cti-bridge models list`)")
        entry = next((e for e in entries if e.name == name), None)
        if entry is None:
            known = ", ".join(e.name for e in entries)
            raise ModelFetchError(f"no model {name!r} in the manifest; known: {known}")
        path = fetch_model(entry, dest or default_models_dir(), sha256=sha256)
    except ModelFetchError as exc:
        print(f"cti-bridge: {exc}", file=sys.stderr)
        return 1
    print(f"{entry.name} ready in {path}")
    print(f"config: transcription.models.{entry.language}: {{path: {path}}}")
    return 0
