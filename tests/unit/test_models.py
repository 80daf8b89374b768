"""`cti-bridge models`: manifest, verified download, safe unpacking; zips from a loopback server."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cti_bridge.models import (
    DEFAULT_MODELS_DIR,
    ModelEntry,
    ModelFetchError,
    default_models_dir,
    fetch_model,
    load_manifest,
    main_list,
    run_models_command,
)

NAME = "vosk-model-test-0.1"


class LoopbackServer:
    """Serves zips from memory on 127.0.0.1 and records every path it was asked for."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.short: set[str] = set()  # paths whose Content-Length promises more than is sent
        self.requests: list[str] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            # A short poll interval keeps shutdown() quick at the end of every test.
            target=self._httpd.serve_forever,
            args=(0.05,),
            name="test-models-http",
            daemon=True,
        )

    def serve(self, path: str, body: bytes, *, short: bool = False) -> str:
        self.files[path] = body
        if short:
            self.short.add(path)
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                extra = 1000 if self.path in server.short else 0
                self.send_header("Content-Length", str(len(body) + extra))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep pytest output clean

        return Handler


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    # urllib honours *_proxy variables; a CI proxy must not see loopback requests.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "models"


def model_zip(top: str = NAME, extra: dict[str, bytes] | None = None, *, vosk: bool = True) -> bytes:
    """A zip laid out like alphacephei's: one folder named like the model."""
    files = {f"{top}/README": b"test model\n"}
    if vosk:
        files |= {
            f"{top}/am/final.mdl": b"acoustic model",
            f"{top}/conf/model.conf": b"--sample-frequency=16000\n",
            f"{top}/graph/HCLr.fst": b"graph",
        }
    files |= extra or {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"{top}/", b"")
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_for(url: str, data: bytes, **changes: object) -> ModelEntry:
    fields: dict[str, object] = {
        "name": NAME,
        "language": "en",
        "url": url,
        "size_bytes": len(data),
        "sha256": sha(data),
        "license": "Apache-2.0",
    }
    fields |= changes
    return ModelEntry(**fields)  # type: ignore[arg-type]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# -- fetch ------------------------------------------------------------------------------


def test_fetch_installs_verified_model(server: LoopbackServer, dest: Path) -> None:
    data = model_zip()
    entry = entry_for(server.serve("/m.zip", data), data)

    path = fetch_model(entry, dest, progress=False)

    assert path == dest / NAME
    assert (path / "am" / "final.mdl").read_bytes() == b"acoustic model"
    assert (path / "conf" / "model.conf").is_file()
    assert leftovers(dest) == [NAME]  # no temporary zip or staging directory


def test_progress_bar_goes_to_stderr(
    server: LoopbackServer, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = model_zip()
    fetch_model(entry_for(server.serve("/m.zip", data), data), dest, progress=True)

    out, err = capsys.readouterr()
    assert out == ""
    assert NAME in err


def test_wrong_checksum_is_refused_and_nothing_is_left(server: LoopbackServer, dest: Path) -> None:
    data = model_zip()
    wrong = "0" * 64
    entry = entry_for(server.serve("/m.zip", data), data, sha256=wrong)

    with pytest.raises(ModelFetchError, match="checksum mismatch") as info:
        fetch_model(entry, dest, progress=False)

    assert wrong in str(info.value)
    assert sha(data) in str(info.value)
    assert leftovers(dest) == []


def test_second_fetch_does_not_download_again(server: LoopbackServer, dest: Path) -> None:
    data = model_zip()
    entry = entry_for(server.serve("/m.zip", data), data)

    first = fetch_model(entry, dest, progress=False)
    second = fetch_model(entry, dest, progress=False)

    assert first == second
    assert server.requests == ["/m.zip"]


@pytest.mark.parametrize(
    "member",
    ["../evil.txt", f"{NAME}/../../evil.txt", "..\\evil.txt", "ABSOLUTE/evil.txt"],
)
def test_zip_slip_entry_is_rejected(server: LoopbackServer, dest: Path, tmp_path: Path, member: str) -> None:
    # An absolute name inside tmp_path, so a regression could only write there.
    member = member.replace("ABSOLUTE", str(tmp_path))
    data = model_zip(extra={member: b"pwned"})
    entry = entry_for(server.serve("/m.zip", data), data)

    with pytest.raises(ModelFetchError, match="unsafe archive"):
        fetch_model(entry, dest, progress=False)

    assert not list(tmp_path.rglob("evil.txt"))
    assert leftovers(dest) == []


def test_archive_without_am_and_conf_is_rejected(server: LoopbackServer, dest: Path) -> None:
    data = model_zip(vosk=False)
    entry = entry_for(server.serve("/m.zip", data), data)

    with pytest.raises(ModelFetchError, match="not a Vosk model"):
        fetch_model(entry, dest, progress=False)

    assert leftovers(dest) == []


def test_archive_with_another_top_folder_is_rejected(server: LoopbackServer, dest: Path) -> None:
    data = model_zip(top="some-other-model")
    entry = entry_for(server.serve("/m.zip", data), data)

    with pytest.raises(ModelFetchError, match="unexpected archive layout"):
        fetch_model(entry, dest, progress=False)

    assert leftovers(dest) == []


def test_not_a_zip_is_rejected(server: LoopbackServer, dest: Path) -> None:
    data = b"<html>mirror error page</html>"
    entry = entry_for(server.serve("/m.zip", data), data)

    with pytest.raises(ModelFetchError, match="not a valid zip"):
        fetch_model(entry, dest, progress=False)

    assert leftovers(dest) == []


def test_http_error_is_reported(server: LoopbackServer, dest: Path) -> None:
    data = model_zip()
    entry = entry_for(server.serve("/m.zip", data) + "-missing", data)

    with pytest.raises(ModelFetchError, match="HTTP 404"):
        fetch_model(entry, dest, progress=False)

    assert leftovers(dest) == []


@pytest.mark.parametrize(("delta", "message"), [(1, "size mismatch"), (-1, "more than the expected")])
def test_size_must_match_the_manifest(server: LoopbackServer, dest: Path, delta: int, message: str) -> None:
    data = model_zip()
    entry = entry_for(server.serve("/m.zip", data), data, size_bytes=len(data) + delta)

    with pytest.raises(ModelFetchError, match=message):
        fetch_model(entry, dest, progress=False)

    assert leftovers(dest) == []


def test_cut_short_download_is_refused(server: LoopbackServer, dest: Path) -> None:
    data = model_zip()
    entry = entry_for(server.serve("/m.zip", data, short=True), data, size_bytes=None)

    with pytest.raises(ModelFetchError, match="download"):
        fetch_model(entry, dest, progress=False)

    assert leftovers(dest) == []


def test_existing_non_model_directory_is_left_alone(server: LoopbackServer, dest: Path) -> None:
    data = model_zip()
    entry = entry_for(server.serve("/m.zip", data), data)
    (dest / NAME).mkdir(parents=True)
    (dest / NAME / "mine.txt").write_text("keep me")

    with pytest.raises(ModelFetchError, match="not a Vosk model"):
        fetch_model(entry, dest, progress=False)

    assert (dest / NAME / "mine.txt").read_text() == "keep me"
    assert server.requests == []


# -- entries without a published checksum ---------------------------------------------------


def test_null_checksum_is_refused_without_sha256(server: LoopbackServer, dest: Path) -> None:
    data = model_zip()
    entry = entry_for(server.serve("/m.zip", data), data, sha256=None, size_bytes=None)

    with pytest.raises(ModelFetchError, match="--sha256"):
        fetch_model(entry, dest, progress=False)

    assert server.requests == []  # refused before anything is downloaded
    assert leftovers(dest) == []


def test_null_checksum_is_accepted_with_the_right_sha256(server: LoopbackServer, dest: Path) -> None:
    data = model_zip()
    entry = entry_for(server.serve("/m.zip", data), data, sha256=None, size_bytes=None)

    path = fetch_model(entry, dest, sha256=f" {sha(data).upper()} ", progress=False)

    assert (path / "am" / "final.mdl").is_file()


def test_null_checksum_with_a_wrong_sha256_is_refused(server: LoopbackServer, dest: Path) -> None:
    data = model_zip()
    entry = entry_for(server.serve("/m.zip", data), data, sha256=None)

    with pytest.raises(ModelFetchError, match="checksum mismatch"):
        fetch_model(entry, dest, sha256=sha(b"something else"), progress=False)

    assert leftovers(dest) == []


def test_sha256_disagreeing_with_the_manifest_is_refused(server: LoopbackServer, dest: Path) -> None:
    data = model_zip()
    entry = entry_for(server.serve("/m.zip", data), data)

    with pytest.raises(ModelFetchError, match="disagrees with the manifest"):
        fetch_model(entry, dest, sha256="a" * 64, progress=False)

    assert server.requests == []


def test_malformed_sha256_is_refused(server: LoopbackServer, dest: Path) -> None:
    data = model_zip()
    entry = entry_for(server.serve("/m.zip", data), data, sha256=None)

    with pytest.raises(ModelFetchError, match="64 hex digits"):
        fetch_model(entry, dest, sha256="abc", progress=False)


# -- manifest ---------------------------------------------------------------------------


def test_shipped_manifest_parses_with_well_formed_checksums() -> None:
    entries = load_manifest()

    assert {e.language for e in entries} >= {"en", "zh"}
    for entry in entries:
        assert entry.url.startswith("https://alphacephei.com/vosk/models/")
        assert entry.url.endswith(f"/{entry.name}.zip")
        if entry.sha256 is not None:
            assert len(entry.sha256) == 64
            assert entry.sha256 == entry.sha256.lower()
            int(entry.sha256, 16)
    small_en = next(e for e in entries if e.name == "vosk-model-small-en-us-0.15")
    assert small_en.sha256 == "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498"
    assert small_en.size_bytes == 41205931


def write_manifest(path: Path, *entries: Mapping[str, object]) -> Path:
    path.write_text(json.dumps({"models": list(entries)}), encoding="utf-8")
    return path


GOOD: dict[str, object] = {
    "name": NAME,
    "language": "en",
    "url": "https://example.invalid/m.zip",
    "size_bytes": None,
    "sha256": None,
    "license": "Apache-2.0",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": "30F26242C4EB449F948E42CB302DD7A686CB29A3423A8367F99FF41780942498"}, "sha256"),
        ({"sha256": "abc"}, "sha256"),
        ({"name": "../escape"}, "name"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"size_bytes": "big"}, "size_bytes"),
        ({"checksum": "x"}, "unknown key"),
    ],
)
def test_invalid_manifest_entries_are_refused(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = write_manifest(tmp_path / "models.json", GOOD | change)

    with pytest.raises(ModelFetchError, match=message):
        load_manifest(path)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match="duplicate"):
        load_manifest(write_manifest(tmp_path / "models.json", GOOD, GOOD))


def test_default_models_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CTI_BRIDGE_MODELS", raising=False)
    assert default_models_dir() == DEFAULT_MODELS_DIR == Path("/var/lib/cti-bridge/models")
    monkeypatch.setenv("CTI_BRIDGE_MODELS", str(tmp_path))
    assert default_models_dir() == tmp_path


# -- the command ------------------------------------------------------------------------


def test_list_shows_english_and_chinese_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_models_command("list", None, None, None, None) == 0

    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[1:] if line.startswith("vosk-model-")]
    assert {row[1] for row in rows} == {"en", "zh"}
    assert "vosk-model-small-en-us-0.15" in out
    assert "vosk-model-small-cn-0.22" in out


def test_main_list_marks_entries_without_checksum() -> None:
    table = main_list(load_manifest())
    line = next(row for row in table.splitlines() if row.startswith("vosk-model-small-cn-0.22"))
    assert "needs --sha256" in line


def test_fetch_command_refuses_null_checksum_then_installs_with_sha256(
    server: LoopbackServer, dest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = model_zip()
    url = server.serve("/m.zip", data)
    manifest = write_manifest(tmp_path / "models.json", GOOD | {"url": url, "language": "zh"})

    assert run_models_command("fetch", NAME, dest, None, manifest) == 1
    assert "--sha256" in capsys.readouterr().err

    assert run_models_command("fetch", NAME, dest, sha(data), manifest) == 0
    out = capsys.readouterr().out
    assert f"transcription.models.zh: {{path: {dest / NAME}}}" in out
    assert server.requests == ["/m.zip"]


def test_fetch_command_uses_env_destination(
    server: LoopbackServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = model_zip()
    manifest = write_manifest(
        tmp_path / "models.json", GOOD | {"url": server.serve("/m.zip", data), "sha256": sha(data)}
    )
    monkeypatch.setenv("CTI_BRIDGE_MODELS", str(tmp_path / "from-env"))

    assert run_models_command("fetch", NAME, None, None, manifest) == 0
    assert (tmp_path / "from-env" / NAME / "am").is_dir()


@pytest.mark.parametrize(
    ("action", "name", "message"),
    [
        ("fetch", "no-such-model", "no model 'no-such-model'"),
        ("fetch", None, "needs a model NAME"),
        ("remove", None, "unknown action"),
    ],
)
def test_command_errors_go_to_stderr_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str, name: str | None, message: str
) -> None:
    assert run_models_command(action, name, tmp_path, None, None) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert message in err


def test_missing_manifest_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_models_command("list", None, None, None, tmp_path / "nope.json") == 1
    assert "cannot read manifest" in capsys.readouterr().err
