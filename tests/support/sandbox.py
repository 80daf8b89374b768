"""Real parts for integration tests: the sandbox PBX, a private mosquitto, an AMI driver."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import shutil
import signal
import socket
import tempfile
import time
import wave
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from panoramisk import Manager

from cti_bridge.ami.originate import FirstResponseAction

REPO_ROOT = Path(__file__).resolve().parents[2]
PBX_SCRIPT = REPO_ROOT / "asterisk" / "sandbox" / "pbx.sh"
DEFAULT_PBX_ROOT = Path.home() / ".cache" / "cti-bridge" / "astroot"

# These mirror asterisk/sandbox/etc/manager.conf.
AMI_HOST = "127.0.0.1"
AMI_PORT = 15038
DAEMON_AMI_USER = "cti-bridge"
DAEMON_AMI_SECRET = "sandbox-secret"
DRIVER_AMI_USER = "tests"
DRIVER_AMI_SECRET = "tests-secret"

WAV_HEADER_BYTES = 44  # a MixMonitor file of this size holds no audio at all

AmiEvent = dict[str, Any]


class SandboxError(RuntimeError):
    """A real part of the test environment is missing or misbehaves."""


def chroot_path(root: Path, path: str) -> Path:
    """Map a path inside a chroot to the host, following symlinks as the chroot would.

    Debian's sounds/en is an absolute symlink (via /etc/alternatives), which resolved from the
    host would point outside the chroot.

    Args:
        root: The chroot directory on the host.
        path: An absolute path as seen inside the chroot.

    Returns:
        The host path, with every symlink on the way resolved relative to ``root``.
    """
    parts = list(PurePosixPath(path).parts[1:])
    resolved = PurePosixPath("/")
    for _ in range(100):  # guards against symlink loops
        if not parts:
            return root / resolved.relative_to("/")
        part = parts.pop(0)
        candidate = resolved / part
        host = root / candidate.relative_to("/")
        if host.is_symlink():
            target = PurePosixPath(os.readlink(host))
            base = PurePosixPath("/") if target.is_absolute() else resolved
            parts = list((base / target).parts[1:]) + parts
            resolved = PurePosixPath("/")
        elif part == "..":
            resolved = resolved.parent
        else:
            resolved = candidate
    raise SandboxError(f"too many symlinks resolving {path} in {root}")


def wav_seconds(path: Path) -> float:
    """Duration of the audio in a WAV file (0.0 for a header-only file)."""
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


async def _run(*argv: str, timeout: float, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run a command to completion; returns (exit code, stdout+stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        # Own session: a Ctrl-C on pytest must not reach the PBX that pbx.sh leaves running.
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise SandboxError(f"{' '.join(argv)} did not finish within {timeout:.0f} s") from None
    return proc.returncode or 0, out.decode(errors="replace")


class AsteriskSandbox:
    """The sandbox PBX: Debian sid's Asterisk in a chroot, driven through asterisk/sandbox/pbx.sh.

    Attributes:
        root: The chroot directory (``$CTI_PBX_ROOT``, default ~/.cache/cti-bridge/astroot).
        ami_host, ami_port: Where AMI listens.
        ami_username, ami_secret: The daemon's least-privilege AMI account.
        driver_username, driver_secret: The test driver's read=all/write=all account.
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root or os.environ.get("CTI_PBX_ROOT") or DEFAULT_PBX_ROOT)
        self.ami_host = AMI_HOST
        self.ami_port = AMI_PORT
        self.ami_username = DAEMON_AMI_USER
        self.ami_secret = DAEMON_AMI_SECRET
        self.driver_username = DRIVER_AMI_USER
        self.driver_secret = DRIVER_AMI_SECRET

    @property
    def monitor_dir(self) -> Path:
        """Host path of the chroot's /var/spool/asterisk/monitor (MixMonitor's default dir)."""
        return self.root / "var" / "spool" / "asterisk" / "monitor"

    @property
    def sounds_dir(self) -> Path:
        """Host path of the chroot's English prompts (/usr/share/asterisk/sounds/en)."""
        return chroot_path(self.root, "/usr/share/asterisk/sounds/en")

    @property
    def log_path(self) -> Path:
        """Asterisk's console log, written by pbx.sh next to the root."""
        return Path(f"{self.root}.log")

    @property
    def is_built(self) -> bool:
        return (self.root / "usr" / "sbin" / "asterisk").is_file()

    def clear_recordings(self) -> None:
        """Delete every recording in the monitor dir (e.g. those of earlier test sessions)."""
        for path in self.monitor_dir.glob("*.wav"):
            path.unlink(missing_ok=True)

    def recording_path(self, uniqueid: str) -> Path:
        """Where the sandbox dialplan's MixMonitor(${UNIQUEID}.wav) writes a call's recording."""
        return self.monitor_dir / f"{uniqueid}.wav"

    async def _pbx(self, command: str, timeout: float) -> str:
        if not PBX_SCRIPT.is_file():
            raise SandboxError(f"{PBX_SCRIPT} is missing")
        env = {**os.environ, "CTI_PBX_ROOT": str(self.root)}
        code, out = await _run("bash", str(PBX_SCRIPT), command, timeout=timeout, env=env)
        if code != 0:
            raise SandboxError(f"pbx.sh {command} failed (exit {code}):\n{out.strip()}")
        return out

    async def build(self) -> None:
        """Build the chroot unless it exists (debootstrap: about a minute on a good mirror)."""
        await self._pbx("build", timeout=1800)

    async def start(self) -> None:
        """Start the PBX (installing the current sandbox config) and wait until fully booted."""
        await self._pbx("start", timeout=120)

    async def stop(self) -> None:
        """Stop gracefully: calls are hung up with events and AMI clients get ``Shutdown``."""
        await self._pbx("stop", timeout=60)

    async def restart(self) -> None:
        await self._pbx("restart", timeout=180)

    async def kill(self) -> None:
        """SIGKILL the PBX: no Hangup, no Shutdown; a crash as AMI clients see it."""
        await self._pbx("kill", timeout=30)

    async def is_running(self) -> bool:
        env = {**os.environ, "CTI_PBX_ROOT": str(self.root)}
        code, _ = await _run("bash", str(PBX_SCRIPT), "status", timeout=30, env=env)
        return code == 0

    async def cli(self, command: str, timeout: float = 30) -> str:
        """Run an Asterisk CLI command through the chroot's remote console.

        Raises:
            SandboxError: The PBX is not running or the console failed.
        """
        asterisk = "/usr/sbin/asterisk"
        code, out = await _run("chroot", str(self.root), asterisk, "-rx", command, timeout=timeout)
        if code != 0:
            raise SandboxError(f"asterisk -rx {command!r} failed (exit {code}): {out.strip()}")
        return out

    async def channel_count(self) -> int:
        out = await self.cli("core show channels count")
        for line in out.splitlines():
            if "active channel" in line:
                return int(line.split()[0])
        raise SandboxError(f"unexpected 'core show channels count' output: {out!r}")

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until the PBX has no channels at all.

        Raises:
            TimeoutError: Channels are still up after ``timeout`` seconds (they are listed).
        """
        deadline = time.monotonic() + timeout
        while True:
            if await self.channel_count() == 0:
                return
            if time.monotonic() > deadline:
                channels = await self.cli("core show channels concise")
                raise TimeoutError(f"PBX not idle after {timeout} s; channels:\n{channels}")
            await asyncio.sleep(0.2)

    async def wait_recording(self, uniqueid: str, min_seconds: float, timeout: float = 20.0) -> Path:
        """Wait until a call's recording holds at least ``min_seconds`` of audio and stops growing.

        MixMonitor closes the file shortly after the channel hangs up.

        Raises:
            TimeoutError: With the file's current size, if it never got there.
        """
        path = self.recording_path(uniqueid)
        deadline = time.monotonic() + timeout
        last_size = -1
        while True:
            size = path.stat().st_size if path.exists() else -1
            if size > WAV_HEADER_BYTES and size == last_size and wav_seconds(path) >= min_seconds:
                return path
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"recording {path} not complete after {timeout} s "
                    f"(size {size} bytes, need {min_seconds} s of audio)"
                )
            last_size = size
            await asyncio.sleep(0.3)


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_port(host: str, port: int, timeout: float) -> bool:
    """Poll until something accepts TCP connections on host:port; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


class Mosquitto:
    """Debian's mosquitto on a private loopback port: anonymous, no persistence.

    The port stays the same across ``restart()``, so clients can reconnect to it.
    """

    binary = Path("/usr/sbin/mosquitto")

    def __init__(self, port: int | None = None, extra_config: str = "") -> None:
        self.host = "127.0.0.1"
        self.port = port or free_loopback_port()
        # Lines after the defaults, which they override: e.g. the listener's TLS files
        # (tests/support/tls.py) or password and ACL files. None: anonymous plain MQTT.
        self.extra_config = extra_config
        self._dir = Path(tempfile.mkdtemp(prefix="cti-mosquitto-"))
        self.config_path = self._dir / "mosquitto.conf"
        self.log_path = self._dir / "mosquitto.log"
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections.

        Raises:
            SandboxError: mosquitto is not installed, exited, or never listened.
        """
        if self.running:
            return
        if not self.binary.is_file():
            raise SandboxError(f"{self.binary} missing: apt-get install mosquitto (scripts/setup.sh)")
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            # Nagle's algorithm would hold a pop back while the subscriber delays its ACK of
            # the previous one: 40 ms stalls once messages flow faster than one per RTT.
            "set_tcp_nodelay true\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            f"{self.extra_config}"
        )
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                str(self.binary),
                "-c",
                str(self.config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                break
            if await wait_port(self.host, self.port, 0.2):
                return
        log_tail = self.log_path.read_text(errors="replace")[-2000:]
        await self._terminate(signal.SIGKILL)
        raise SandboxError(f"mosquitto did not come up on port {self.port}:\n{log_tail}")

    async def _terminate(self, sig: int, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    async def stop(self) -> None:
        """Graceful stop (SIGTERM): clients see the connection close."""
        await self._terminate(signal.SIGTERM)

    async def kill(self) -> None:
        """SIGKILL: the broker vanishes without closing anything cleanly."""
        await self._terminate(signal.SIGKILL)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def remove_files(self) -> None:
        """Delete the generated config and log (after the final stop)."""
        shutil.rmtree(self._dir, ignore_errors=True)

    async def __aenter__(self) -> Mosquitto:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        self.remove_files()


class EventLog:
    """Every AMI event a session received, in order, with a way to wait for one."""

    def __init__(self) -> None:
        self.events: list[AmiEvent] = []
        self._changed = asyncio.Event()

    def record(self, event: AmiEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def clear(self) -> None:
        self.events.clear()

    def matching(self, predicate: Callable[[AmiEvent], bool]) -> list[AmiEvent]:
        return [event for event in self.events if predicate(event)]

    async def wait_for(
        self, predicate: Callable[[AmiEvent], bool], timeout: float = 10.0, start: int = 0
    ) -> AmiEvent:
        """Return the first event from index ``start`` on that matches ``predicate``.

        Raises:
            TimeoutError: None arrived; the message lists the event names seen.
        """
        deadline = time.monotonic() + timeout
        index = start
        while True:
            while index < len(self.events):
                event = self.events[index]
                index += 1
                if predicate(event):
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = sorted({str(e.get("Event")) for e in self.events[start:]})
                raise TimeoutError(f"no matching AMI event within {timeout} s; seen: {seen}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager, minus its endless reconnect loop once we closed it."""

    closed = False

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        if self.closed:
            return None
        return super().connect(*args, **kwargs)

    def close(self) -> None:
        self.closed = True
        super().close()


class AmiDriver:
    """A panoramisk 1.4 AMI session; by default the sandbox's ``tests`` user, which may originate.

    Every event is recorded in ``self.log`` (an EventLog). panoramisk reconnects and logs in
    again by itself when the PBX restarts.
    """

    def __init__(
        self,
        host: str = AMI_HOST,
        port: int = AMI_PORT,
        username: str = DRIVER_AMI_USER,
        secret: str = DRIVER_AMI_SECRET,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.secret = secret
        self.log = EventLog()
        self._manager: Any = None

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect and log in.

        Raises:
            SandboxError: AMI is not reachable or the login was refused.
        """
        # panoramisk retries a failed connect forever in the background; probe first so a
        # PBX that is down gives a clear error instead of a silent retry loop.
        if not await wait_port(self.host, self.port, timeout):
            raise SandboxError(f"AMI not reachable on {self.host}:{self.port}")
        self._manager = _Manager(
            loop=asyncio.get_running_loop(),
            host=self.host,
            port=self.port,
            username=self.username,
            secret=self.secret,
            reconnect_timeout=1,
        )
        # A plain callback that only records: panoramisk drops exceptions of coroutine callbacks.
        self._manager.register_event("*", lambda _manager, event: self.log.record(dict(event)))
        await self._manager.connect()
        try:
            await self.wait_logged_in(timeout)
        except SandboxError:
            await self.close()
            raise

    @property
    def logged_in(self) -> bool:
        manager = self._manager
        return bool(
            manager is not None
            and manager._connected  # panoramisk has no public flag for this
            and manager.authenticated
            and manager.authenticated_future is None
            and not manager.protocol.closed
        )

    async def wait_logged_in(self, timeout: float = 10.0) -> None:
        """Wait for the (re)login to finish, e.g. after a PBX restart.

        Raises:
            SandboxError: Not logged in within ``timeout`` (wrong secret, PBX down).
        """
        deadline = time.monotonic() + timeout
        while not self.logged_in:
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"AMI login as {self.username!r} on {self.host}:{self.port} did not succeed"
                )
            await asyncio.sleep(0.05)

    async def send(self, action: Mapping[str, str], timeout: float = 10.0) -> Any:
        """Send an action and return panoramisk's response (a Message, or a list for lists)."""
        await self.wait_logged_in(timeout)
        future = self._manager.send_action(dict(action))
        return await asyncio.wait_for(future, timeout)

    async def originate(
        self,
        did: str,
        caller_number: str,
        caller_name: str = "Test Caller",
        caller_exten: str = "talk",
    ) -> None:
        """Place an inbound test call to ``did`` (async; returns once Asterisk accepted it).

        The ;1 half of ``Local/<caller_exten>@callers`` runs [from-pstn] ``did`` with the given
        caller ID; the ;2 half runs [callers] ``caller_exten`` (talk, hangup-after-3).

        Raises:
            SandboxError: Asterisk refused the Originate.
        """
        name = caller_name.replace('"', "")
        await self._originate(
            f"Local/{caller_exten}@callers", "from-pstn", did, f'"{name}" <{caller_number}>'
        )

    async def send_first(self, action: Mapping[str, str], timeout: float = 10.0) -> Any:
        """Send an action and return its first response only.

        panoramisk 1.4 takes some one-line answers for the start of a list and waits for an end
        that never comes: QueueAdd's "Added interface to queue", for one.
        """
        await self.wait_logged_in(timeout)
        first = FirstResponseAction(dict(action))
        self._manager.send_action(first)
        return await asyncio.wait_for(first.first, timeout)

    async def originate_from_agent(self, device: str, number: str, agent_name: str = "Agent") -> None:
        """An agent's phone calls out: ring ``device`` (e.g. ``Local/agent1@phones``, which picks up
        and talks), then run [from-internal] ``9<number>``, which dials [pstn-out] (numbers
        1415556XXXX are busy, the others answer). Returns once Asterisk accepted it.

        Raises:
            SandboxError: Asterisk refused the Originate.
        """
        extension = device.split("/")[-1].split("@")[0]
        await self._originate(
            device, "from-internal", f"9{number.lstrip('+')}", f'"{agent_name}" <{extension}>'
        )

    async def _originate(self, channel: str, context: str, exten: str, caller_id: str) -> None:
        await self.wait_logged_in()
        response = await self.send_first(
            {
                "Action": "Originate",
                "Channel": channel,
                "Context": context,
                "Exten": exten,
                "Priority": "1",
                "CallerID": caller_id,
                "Async": "true",
            }
        )
        if response.get("Response") != "Success":
            raise SandboxError(f"Originate of {channel} to {exten}@{context} refused: {dict(response)}")

    async def hangup_all(self) -> None:
        """Hang up every channel on the PBX (a Hangup action with a /regex/ channel)."""
        await self.send({"Action": "Hangup", "Channel": "/.*/"})

    async def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        await asyncio.sleep(0)  # let the transport finish closing inside this loop


@dataclass(frozen=True)
class SpeechSample:
    """A real English recording and what is said in it."""

    path: Path
    transcript: str


SOUNDS_PACKAGE_HINT = (
    "install asterisk-core-sounds-en and asterisk-core-sounds-en-wav on the host, "
    "or build the sandbox chroot (asterisk/sandbox/pbx.sh build); scripts/setup.sh does both"
)


def load_prompt_transcripts(path: Path) -> dict[str, str]:
    """Parse core-sounds-en.txt(.gz): ``name: text`` per line, ';' comments.

    Returns:
        Prompt name (relative to sounds/en, without extension, e.g. ``digits/1``) → text.
    """
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    transcripts: dict[str, str] = {}
    for line in raw.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith(";") or ": " not in line:
            continue
        name, text = line.split(": ", 1)
        transcripts[name.strip()] = " ".join(text.split())
    return transcripts


def find_english_prompts(pbx_root: Path | None = None) -> tuple[Path, Path]:
    """Locate the English prompts (WAV) and their transcript file, host first, then the chroot.

    Returns:
        (sounds directory, core-sounds-en.txt(.gz) path).

    Raises:
        SandboxError: Neither the host nor the sandbox chroot has them.
    """
    root = pbx_root or Path(os.environ.get("CTI_PBX_ROOT") or DEFAULT_PBX_ROOT)
    sounds_dirs = [
        Path("/usr/share/asterisk/sounds/en").resolve(),
        chroot_path(root, "/usr/share/asterisk/sounds/en") if root.is_dir() else None,
    ]
    docs = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt"
    transcript_files = [
        Path(docs + ".gz"),
        Path(docs),
        root / docs.lstrip("/") if root.is_dir() else None,
        root / (docs + ".gz").lstrip("/") if root.is_dir() else None,
    ]
    sounds = next((d for d in sounds_dirs if d and (d / "hello-world.wav").is_file()), None)
    text = next((f for f in transcript_files if f and f.is_file()), None)
    if sounds is None or text is None:
        raise SandboxError(
            f"English prompts not found (sounds dir: {sounds}, transcripts: {text}); " + SOUNDS_PACKAGE_HINT
        )
    return sounds, text


def english_speech_sample(name: str = "queue-youarenext", pbx_root: Path | None = None) -> SpeechSample:
    """A real 8 kHz English speech prompt from asterisk-core-sounds-en-wav with its transcript.

    The default, queue-youarenext (5.4 s): "Your call is now first in line and will be
    answered by the next available representative."

    Raises:
        SandboxError: The prompt or its transcript is not available.
    """
    sounds, text_file = find_english_prompts(pbx_root)
    wav_path = sounds / f"{name}.wav"
    transcripts = load_prompt_transcripts(text_file)
    if not wav_path.is_file() or name not in transcripts:
        raise SandboxError(f"prompt {name!r} missing ({wav_path}, {text_file})")
    return SpeechSample(path=wav_path, transcript=transcripts[name])
