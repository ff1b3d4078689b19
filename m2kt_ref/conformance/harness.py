"""The conformance harness: drive an implementation through the vectors of one profile.

The implementation is a separate process speaking the line-delimited JSON protocol of
spec/conformance.md §4 on its stdin and stdout. Every vector ends as one of:

* ``pass`` - the reply matches the expected outcome;
* ``fail`` - it does not (the outcome records expected and actual);
* ``skipped`` - the implementation declined the vector and gave a reason;
* ``errored`` - the implementation crashed, hung past the timeout, or replied with something
  that is not a valid protocol message. The harness kills it (crash, hang or malformed reply)
  and starts a fresh process for the next vector.

The harness itself never raises for anything the implementation does; it raises ``USAGE`` only
for its own arguments (unknown profile or vector id, an implementation that does not implement
the profile).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree as ET

from m2kt_ref.conformance.protocol import (
    PROFILES,
    PROTOCOL_VERSION,
    judge,
    message_problem,
)
from m2kt_ref.conformance.vectors import Vector, load_vectors
from m2kt_ref.errors import M2ktError, UsageError
from m2kt_ref.packet import codec

__all__ = [
    "MAX_START_FAILURES",
    "START_TIMEOUT",
    "STATUSES",
    "STDERR_TAIL",
    "Implementation",
    "Outcome",
    "Report",
    "json_report",
    "junit_report",
    "materialise",
    "run_suite",
    "text_report",
]

#: Seconds an implementation gets to answer the start handshake (interpreters can be slow).
START_TIMEOUT = 30.0
#: Consecutive failed starts after which the remaining vectors are marked errored unrun.
MAX_START_FAILURES = 3
STDERR_TAIL = 2000

STATUSES = ("pass", "fail", "skipped", "errored")


@dataclass
class Outcome:
    """How one vector ended."""

    id: str
    status: str
    expected: str
    actual: str | None = None
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    """Everything a run produced, in vector order."""

    profile: str
    implementation: dict[str, Any] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    restarts: int = 0

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for o in self.outcomes:
            out[o.status] += 1
        return out

    @property
    def ok(self) -> bool:
        """True when every vector that was not skipped passed."""
        return all(o.status in ("pass", "skipped") for o in self.outcomes)


class _Broken(Exception):
    """The implementation cannot go on: it crashed, hung or sent a malformed message."""


def materialise(inp: dict[str, Any], workdir: Path, name: str = "input") -> dict[str, Any]:
    """The request's input: a vector's ``file`` input becomes a ``path`` (written or absent)."""
    out = dict(inp)
    mode = out.pop("file", None)
    if mode is None:
        return out
    path = (workdir / f"{name}.m2kt").resolve()
    if mode == "present":
        path.write_bytes(base64.b64decode(out.pop("b64")))
    else:
        out.pop("b64", None)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    out["path"] = str(path)
    return out


class Implementation:
    """One running process of the implementation under test."""

    def __init__(self, command: Sequence[str], *, cwd: str | None = None) -> None:
        self.command = list(command)
        # kept open as long as the process runs: read for crash reports, closed by _close()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            self._stderr.close()
            raise _Broken(f"cannot start {self.command[0]!r}: {exc.strerror}") from None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()
        self.info: dict[str, Any] = {}

    def _pump(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self._lines.put(line)
        self._lines.put(None)

    def stderr_tail(self) -> str:
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - STDERR_TAIL))
        return self._stderr.read().decode("utf-8", "replace").strip()

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _Broken(self._exit_text()) from None

    def _exit_text(self) -> str:
        try:
            status = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            status = None
        text = (
            f"implementation exited with status {status}"
            if status is not None
            else ("implementation closed its output")
        )
        tail = self.stderr_tail()
        return f"{text}; stderr: {tail[-500:]}" if tail else text

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next message; raises :class:`_Broken` on timeout, exit or a non-JSON line."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Broken(f"timed out after {timeout:g} s")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                raise _Broken(f"timed out after {timeout:g} s") from None
            if line is None:
                raise _Broken(self._exit_text())
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                raise _Broken(f"malformed reply (not JSON): {line[:200]!r}") from None
            if not isinstance(message, dict):
                raise _Broken(f"malformed reply (not an object): {line[:200]!r}")
            return message

    def handshake(self, profile: str, timeout: float) -> dict[str, Any]:
        self.send({"cmd": "start", "protocol": PROTOCOL_VERSION, "profile": profile})
        message = self.receive(timeout)
        problem = message_problem("started", message)
        if problem:
            raise _Broken(f"malformed start reply: {problem}")
        self.info = message["implementation"]
        return self.info

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(_Broken):
                self.send({"cmd": "stop"})
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        self._close()

    def _close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        self._stderr.close()


def _reference_check(result: dict[str, Any]) -> str | None:
    """Producer results: the reference must accept the bytes and re-encode them identically."""
    try:
        emitted = base64.b64decode(result.get("packet_b64", ""), validate=True)
    except ValueError:
        return "packet_b64 is not base64"
    try:
        packet = codec.decode(emitted)
    except M2ktError as exc:
        return f"the reference refuses the emitted packet: {exc.code}: {exc}"
    if codec.encode(packet) != emitted:
        return "the emitted packet does not re-encode to identical bytes"
    return None


def _evaluate(vector: Vector, reply: dict[str, Any]) -> Outcome:
    expected = vector.expect
    if "skipped" in reply:
        return Outcome(vector.id, "skipped", expected, detail=reply["skipped"]["reason"])
    if "errored" in reply:
        return Outcome(vector.id, "errored", expected, detail=reply["errored"]["message"])
    result = reply["result"]
    actual = "valid" if result["outcome"] == "valid" else result.get("code")
    problem = None
    if vector.op in ("encode", "produce") and result["outcome"] == "valid":
        problem = _reference_check(result)
    problem = problem or judge(vector.expected, result, vector.op)
    if problem:
        return Outcome(vector.id, "fail", expected, actual, problem)
    return Outcome(vector.id, "pass", expected, actual)


def run_suite(
    command: str | Sequence[str],
    profile: str,
    *,
    suite_dir: Path | None = None,
    only: list[str] | None = None,
    timeout: float = 10.0,
    start_timeout: float = START_TIMEOUT,
    cwd: str | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> Report:
    """Run the vectors of ``profile`` against the implementation started by ``command``.

    Args:
        command: the implementation's command line (a string is split like a POSIX shell does).
        profile: ``reader``, ``verifier`` or ``producer``.
        suite_dir: the suite (default: :func:`~m2kt_ref.conformance.vectors.default_suite_dir`).
        only: run just these vector ids (those of the profile).
        timeout: seconds one vector may take before the implementation is killed.
        start_timeout: seconds the start handshake may take.
        cwd: the implementation's working directory.
        progress: called with each outcome as it is decided.

    Raises:
        UsageError: unknown profile or vector id, or the implementation does not implement
            ``profile``.
    """
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r} (one of {', '.join(PROFILES)})")
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise UsageError("empty implementation command")
    vectors = load_vectors(suite_dir, profile=profile, only=only)
    report = Report(profile)
    impl: Implementation | None = None
    start_failures = 0
    seq = 0

    def record(outcome: Outcome) -> None:
        report.outcomes.append(outcome)
        if progress is not None:
            progress(outcome)

    with tempfile.TemporaryDirectory(prefix="m2kt-conformance-") as workdir:
        try:
            for index, vector in enumerate(vectors):
                started = time.monotonic()
                if impl is None:
                    if start_failures >= MAX_START_FAILURES:
                        record(
                            Outcome(
                                vector.id,
                                "errored",
                                vector.expect,
                                detail="not run: the implementation failed to start "
                                f"{MAX_START_FAILURES} times in a row",
                            )
                        )
                        continue
                    try:
                        impl = Implementation(argv, cwd=cwd)
                        info = impl.handshake(profile, start_timeout)
                    except _Broken as exc:
                        if impl is not None:
                            impl.kill()
                        impl = None
                        start_failures += 1
                        record(
                            Outcome(
                                vector.id, "errored", vector.expect, detail=f"start failed: {exc}"
                            )
                        )
                        continue
                    if profile not in info["profiles"]:
                        impl.stop()
                        raise UsageError(
                            f"{info['name']} {info['version']} does not implement the {profile} "
                            f"profile (it implements: {', '.join(info['profiles']) or 'none'})",
                        )
                    if report.implementation:
                        report.restarts += 1
                    report.implementation = info
                    start_failures = 0
                request = {
                    "cmd": "run",
                    "seq": seq,
                    "id": vector.id,
                    "op": vector.op,
                    "input": materialise(vector.input, Path(workdir), f"v{index}"),
                }
                seq += 1
                try:
                    impl.send(request)
                    reply = impl.receive(timeout)
                    problem = message_problem("reply", reply)
                    if problem:
                        raise _Broken(f"malformed reply: {problem}")
                    if reply["seq"] != request["seq"]:
                        raise _Broken(f"reply for seq {reply['seq']}, expected {request['seq']}")
                except _Broken as exc:
                    impl.kill()
                    impl = None
                    outcome = Outcome(vector.id, "errored", vector.expect, detail=str(exc))
                else:
                    outcome = _evaluate(vector, reply)
                outcome.seconds = round(time.monotonic() - started, 4)
                record(outcome)
        finally:
            if impl is not None:
                impl.stop()
    return report


# --------------------------------------------------------------------------- reports


def _label(report: Report) -> str:
    info = report.implementation
    return f"{info.get('name', '?')} {info.get('version', '?')}" if info else "(never started)"


def text_report(report: Report, vectors: Iterable[Vector] = (), *, verbose: bool = False) -> str:
    """One line per vector that did not pass (every vector with ``verbose``), then the totals."""
    by_id = {v.id: v for v in vectors}
    lines = []
    for o in report.outcomes:
        if o.status == "pass" and not verbose:
            continue
        line = f"{o.status.upper():8} {o.id}"
        if o.status == "fail":
            line += f": expected {o.expected}, got {o.actual}: {o.detail}"
        elif o.detail:
            line += f": {o.detail}"
        if o.status != "pass" and o.id in by_id:
            line += f"  [{', '.join(by_id[o.id].spec)}]"
        lines.append(line)
    c = report.counts()
    lines.append(
        f"{report.profile}: {len(report.outcomes)} vectors against {_label(report)}: "
        f"{c['pass']} passed, {c['fail']} failed, {c['skipped']} skipped, "
        f"{c['errored']} errored" + (f" ({report.restarts} restarts)" if report.restarts else "")
    )
    lines.append("PASSED" if report.ok else "FAILED")
    return "\n".join(lines)


def json_report(report: Report) -> str:
    doc = {
        "profile": report.profile,
        "protocol": PROTOCOL_VERSION,
        "implementation": report.implementation,
        "ok": report.ok,
        "counts": report.counts(),
        "restarts": report.restarts,
        "outcomes": [asdict(o) for o in report.outcomes],
    }
    return json.dumps(doc, indent=1)


def junit_report(report: Report, vectors: Iterable[Vector] = ()) -> str:
    by_id = {v.id: v for v in vectors}
    c = report.counts()
    suite = ET.Element(
        "testsuite",
        name=f"m2kt-conformance.{report.profile}",
        tests=str(len(report.outcomes)),
        failures=str(c["fail"]),
        errors=str(c["errored"]),
        skipped=str(c["skipped"]),
        time=f"{sum(o.seconds for o in report.outcomes):.3f}",
    )
    props = ET.SubElement(suite, "properties")
    for key, value in report.implementation.items():
        ET.SubElement(props, "property", name=f"implementation.{key}", value=str(value))
    for o in report.outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"conformance.{report.profile}",
            name=o.id,
            time=f"{o.seconds:.4f}",
        )
        if o.status == "fail":
            el = ET.SubElement(case, "failure", message=f"expected {o.expected}, got {o.actual}")
            el.text = o.detail
        elif o.status == "errored":
            ET.SubElement(case, "error", message=o.detail[:500]).text = o.detail
        elif o.status == "skipped":
            ET.SubElement(case, "skipped", message=o.detail)
        if o.id in by_id:
            ET.SubElement(case, "system-out").text = by_id[o.id].description
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
