"""What happened to a Kaniko run, and what to change: a pure function of the run's facts.

Exit codes alone are ambiguous (143 is busybox ``timeout``, a Jenkins abort and a pod eviction
alike), so :func:`diagnose` decides from, in order: our own deadline, the signals we received,
Kaniko's final error line (catalogue in :mod:`.kaniko_log`), then the exit code with the last
phase marker and the elapsed time.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .kaniko_log import CatalogueMatch, LogState, match_catalogue, parse_line, phase_of
from .timeout import FORMULA_TEXT, formula_seconds
from .units import fmt_bytes, fmt_duration, fmt_rate

__all__ = [
    "CODES",
    "OUTCOMES",
    "Diagnosis",
    "RunFacts",
    "diagnose",
    "fitting_timeout",
    "fmt_bytes",
    "fmt_duration",
    "shell_exit_code",
    "signal_name",
]

CODES = (
    "push-timeout",
    "build-timeout",
    "terminated",
    "oom-killed",
    "run-step-failed",
    "registry-auth",
    "registry-denied",
    "registry-network",
    "registry-tls",
    "base-image-not-found",
    "rate-limited",
    "dockerfile-missing",
    "copy-source-missing",
    "disk-full",
    "snapshot-timeout",
    "push-connection-dropped",
    "request-too-large",
    "immutable-tag",
    "name-unknown",
    "executor-missing",
    "filesystem-conflict",  # a layer's file type clashes with the image or a mounted path
    "manifest-rejected",  # the registry refused the manifest (media type, tag, missing blob)
    "script-never-ran",  # split mode: the kaniko step exited 127 and left no file of this run
    "stale-result",  # split mode: the rc/log/times files predate the plan or contradict the step
    "unknown",
)
OUTCOMES = ("pushed", "failed", "timed-out", "terminated", "skipped")
PUSH_PHASES = ("push", "pushed")


def shell_exit_code(returncode: Optional[int]) -> Optional[int]:
    """A return code as a shell reports it: Popen's -15 (killed by SIGTERM) -> 143, -9 -> 137.
    Negative codes also come from wrappers that store Popen's value; never exit with them."""
    if returncode is None:
        return None
    return 128 - returncode if returncode < 0 else returncode


def signal_name(exit_code: Optional[int]) -> Optional[str]:
    """143 -> SIGTERM, 137 -> SIGKILL, -15 -> SIGTERM; None when not a signal exit."""
    if exit_code is None:
        return None
    num = -exit_code if exit_code < 0 else exit_code - 128 if 128 < exit_code < 160 else 0
    try:
        return signal.Signals(num).name if num else None
    except ValueError:
        return None


def fitting_timeout(pre_push: float, push_seconds: float, floor: float = 0.0) -> int:
    """The timeout formula (:func:`timeout.formula_seconds`) for a known run: the time before
    the push and the push, rounded up to a whole minute and at least ``floor``."""
    value = formula_seconds(0.0, round(pre_push), round(push_seconds))
    value = max(value, floor)
    return int(-(-value // 60) * 60)


@dataclass
class RunFacts:
    """Everything :func:`diagnose` looks at. Times are seconds since the executor started."""

    exit_code: Optional[int]  # None: the run never finished (split: no rc file)
    elapsed: float
    timeout: Optional[float] = None
    deadline_hit: bool = False  # our deadline (direct/docker) or the script's timeout (split)
    signals: Sequence[str] = ()  # signals ci-report received and forwarded ("SIGTERM")
    lines: Sequence[str] = ()  # the log (its tail is enough)
    log: Optional[LogState] = None
    estimate: Optional[dict[str, Any]] = None  # Estimate.to_dict()
    bandwidth_bps: Optional[float] = None  # the push bandwidth the timeout assumed
    expected_push_s: Optional[float] = None
    timeout_floor: float = 600.0
    timeout_cap: float = 10_800.0
    timeout_source: Optional[str] = None  # "explicit", "history", ... (from the timeout plan)
    mode: str = "direct"

    @property
    def push_bytes(self) -> Optional[int]:
        if not self.estimate:
            return None
        value = self.estimate.get("totalBytes")
        return int(value) if isinstance(value, (int, float)) and value > 0 else None


@dataclass
class Diagnosis:
    outcome: str  # pushed | failed | timed-out | terminated | skipped
    code: Optional[str]  # None on success
    summary: str
    evidence: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    cause: Optional[str] = None  # one sentence on how the code was decided

    def to_dict(self) -> Optional[dict[str, Any]]:
        if self.code is None:
            return None
        return {
            "code": self.code,
            "summary": self.summary,
            "evidence": self.evidence,
            "fixes": self.fixes,
        }


def _marker_index(lines: Sequence[str]) -> int:
    """Index of the last phase-marker line (-1 when there is none)."""
    for i in range(len(lines) - 1, -1, -1):
        parsed = parse_line(lines[i])
        if parsed.level in (None, "info") and phase_of(parsed.msg):
            return i
    return -1


def _last_lines(lines: Sequence[str], n: int = 3) -> list[str]:
    out = [parse_line(x).raw for x in lines if x.strip()]
    return out[-n:]


def _phase(facts: RunFacts) -> str:
    return facts.log.phase if facts.log else "start"


PULL_PHASES = ("resolve", "manifest", "pull", "unpack")
_RETRIEVING = re.compile(r"Retrieving image (\S+) from registry (\S+)")


def _base_being_pulled(lines: list[str]) -> tuple[Optional[str], Optional[str]]:
    """(image, registry host) of the last ``Retrieving image X from registry Y`` line."""
    for raw in reversed(lines):
        m = _RETRIEVING.search(parse_line(raw).msg)
        if m:
            return m.group(1), m.group(2)
    return None, None


def _phase_evidence(facts: RunFacts) -> list[str]:
    marker = facts.log.last_marker if facts.log else None
    return (
        [marker]
        if marker
        else [
            "(no phase marker in the log: Kaniko never got past its start-up push-permission check)"
        ]
    )


# -- timeouts ----------------------------------------------------------------------------


def _push_timeout(facts: RunFacts) -> Diagnosis:
    log = facts.log or LogState()
    push_at = log.push_started_at
    pre_push = (
        push_at if push_at is not None else max(0.0, facts.elapsed - (facts.expected_push_s or 0))
    )
    push_ran = max(1.0, facts.elapsed - pre_push)
    size = facts.push_bytes
    bw = facts.bandwidth_bps
    fixes: list[str] = []
    first_push = log.first("push")
    dest = (first_push.target if first_push else None) or "the registry"
    if size and bw:
        expected = size / bw
        if push_ran < expected:
            fit = fitting_timeout(pre_push, expected, facts.timeout_floor)
            fixes.append(
                f"--timeout {fit} would have fitted: {fmt_duration(pre_push)} before the push + "
                f"{fmt_bytes(size)} at {fmt_rate(bw)} = {fmt_duration(expected)} of push, "
                f"{FORMULA_TEXT}"
            )
        else:
            upper = size / push_ran
            slow = upper / 2
            fit = fitting_timeout(pre_push, size / slow, facts.timeout_floor)
            fixes.append(
                f"--timeout {fit} would have fitted if the push was half done: "
                f"{fmt_bytes(size)} did not finish in {fmt_duration(push_ran)}, so the registry "
                f"took less than {fmt_rate(upper)} (the timeout assumed {fmt_rate(bw)}); at "
                f"{fmt_rate(slow)} the push needs {fmt_duration(size / slow)}"
            )
    elif size:
        slow = size / (2 * push_ran)
        fit = fitting_timeout(pre_push, 2 * push_ran, facts.timeout_floor)
        fixes.append(
            f"--timeout {fit} would have fitted if the push was half done: {fmt_bytes(size)} "
            f"did not finish in {fmt_duration(push_ran)} (below {fmt_rate(size / push_ran)}; "
            f"assumed {fmt_rate(slow)})"
        )
    else:
        fit = fitting_timeout(pre_push, 2 * push_ran, facts.timeout_floor)
        fixes.append(
            f"--timeout {fit} would have fitted if the push was half done after "
            f"{fmt_duration(push_ran)} (push size unknown: the estimate could not reach the "
            f"registry; pass --bandwidth MBPS to size it)"
        )
    if fit == int(facts.timeout_floor) and fixes:
        fixes[0] += f" (raised to the {int(facts.timeout_floor)} s floor)"
    if fit > facts.timeout_cap:
        fixes.append(
            f"that is above the timeout cap ({int(facts.timeout_cap)} s): push fewer bytes "
            f"rather than waiting longer"
        )
    if facts.timeout_source == "explicit":
        fixes.append("or --timeout auto: sized from the measured bandwidth of earlier pushes")
    fixes.append(
        "push fewer bytes: Spring Boot layered JARs (dependencies first) + --reproducible, or "
        "Jib, so only the small application layer changes"
    )
    fixes.append("do not run several pushes over the same uplink at once: they share it")
    fixes.append("slow pushes to GitLab/ECR/Quay: GODEBUG=http2client=0 in the executor's env")
    evidence = _phase_evidence(facts)
    last = _last_lines(facts.lines, 1)
    if last and last[0] not in evidence:
        evidence.append(last[0])
    evidence.extend(log.retries[-2:])
    summary = (
        f"the push to {dest} did not finish within the {int(facts.timeout or 0)} s timeout: "
        f"it ran {fmt_duration(push_ran)} after {fmt_duration(pre_push)} of pull and build"
    )
    if size:
        summary += f"; about {fmt_bytes(size)} to upload"
    cause = (
        "ci-report's own deadline fired while the last phase marker was 'Pushing image to' "
        "(Kaniko logs nothing while it uploads)"
        if facts.mode != "split"
        else f"the script's timeout killed the executor (exit {facts.exit_code}) at "
        f"{fmt_duration(facts.elapsed)} of {int(facts.timeout or 0)} s, during the push"
    )
    return Diagnosis("timed-out", "push-timeout", summary, evidence, fixes, cause)


_BUILD_PHASE_FIXES = {
    "start": "the start-up push-permission check hung: check egress to the registry "
    "(NetworkPolicy, proxy)",
    "resolve": "pulling the base image is slow: a registry mirror close to the cluster "
    "(--registry-mirror / --registry-map) or a smaller base image",
    "manifest": "pulling the base image is slow: a registry mirror close to the cluster "
    "(--registry-mirror / --registry-map) or a smaller base image",
    "pull": "pulling the base image is slow: a registry mirror close to the cluster "
    "(--registry-mirror / --registry-map) or a smaller base image",
    "unpack": "unpacking the base image is slow: a smaller base image, fewer stages",
    "snapshot": "snapshots are slow: --snapshot-mode=redo, or --use-new-run",
    "instruction": "a RUN step is slow: move compilation out of the Dockerfile (build the "
    "artifact before the image step) or use --cache=true with a nearby "
    "--cache-repo",
    "cache-lookup": "cache lookups are slow: point --cache-repo at a registry near the cluster",
    "cache-push": "cache pushes upload every RUN layer a second time: --cache=false or a "
    "nearby --cache-repo",
}


def _build_timeout(facts: RunFacts) -> Diagnosis:
    phase = _phase(facts)
    need = fitting_timeout(facts.elapsed * 2 + (facts.expected_push_s or 0), 0, facts.timeout_floor)
    fixes = [
        f"--timeout {need} if the build was half done ({fmt_duration(facts.elapsed)} spent "
        f"before the push started"
        + (
            f", plus {fmt_duration(facts.expected_push_s)} expected for the push)"
            if facts.expected_push_s
            else ")"
        )
    ]
    hint = _BUILD_PHASE_FIXES.get(phase, _BUILD_PHASE_FIXES["instruction"])
    fixes.append(hint)
    evidence = _phase_evidence(facts) + [
        x for x in _last_lines(facts.lines, 2) if x not in _phase_evidence(facts)
    ]
    summary = (
        f"the build did not reach the push within the {int(facts.timeout or 0)} s "
        f"timeout; it was in phase '{phase}' after {fmt_duration(facts.elapsed)}"
    )
    cause = (
        "the deadline fired before any 'Pushing image to' marker, so the time went into "
        "pulling and building"
    )
    return Diagnosis("timed-out", "build-timeout", summary, evidence, fixes, cause)


# -- signals and kills -------------------------------------------------------------------


def _terminated(facts: RunFacts, who: str) -> Diagnosis:
    phase = _phase(facts)
    fixes = [
        "if a Jenkins timeout() wraps this step, make it longer than ci-report's own timeout "
        f"({int(facts.timeout or 0)} s) so that ci-report can stop the build and explain it",
        "a pod deletion or eviction also sends SIGTERM: check the pod events (kubectl "
        "describe pod: Evicted, Killing) and the ephemeral-storage/memory requests",
    ]
    if phase in PUSH_PHASES:
        fixes.insert(
            0,
            "it stopped during the push: the push may simply be slow; see the "
            "estimate and --timeout auto",
        )
    summary = f"{who} during phase '{phase}' after {fmt_duration(facts.elapsed)}"
    if facts.timeout:
        summary += f" (ci-report's own timeout was {int(facts.timeout)} s)"
    evidence = _phase_evidence(facts) + [
        x for x in _last_lines(facts.lines, 1) if x not in _phase_evidence(facts)
    ]
    cause = (
        f"exit {facts.exit_code} with the deadline not reached: the signal came from "
        "outside (Jenkins abort or timeout(), pod deletion)"
    )
    return Diagnosis("terminated", "terminated", summary, evidence, fixes, cause)


def _oom(facts: RunFacts) -> Diagnosis:
    phase = _phase(facts)
    likely = "right after a snapshot marker, " if phase in ("snapshot", "unpack") else ""
    summary = (
        f"the executor was SIGKILLed (exit {facts.exit_code}) with no error line, "
        f"{likely}in phase '{phase}' after {fmt_duration(facts.elapsed)}: most likely "
        f"the container's memory limit (OOM kill)"
    )
    fixes = [
        "--compressed-caching=false (Kaniko keeps compressed layers in memory by default)",
        "raise the kaniko container's resources.limits.memory",
        "--snapshot-mode=redo; --cache-copy-layers=false; avoid --reproducible on large images",
        "confirm with kubectl describe pod (Last State: OOMKilled) or the node's dmesg",
    ]
    evidence = _phase_evidence(facts)
    cause = (
        "exit 137 is SIGKILL; neither ci-report's deadline nor a signal to ci-report "
        "explains it, and Kaniko printed no error"
    )
    return Diagnosis("failed", "oom-killed", summary, evidence, fixes, cause)


# -- catalogue ---------------------------------------------------------------------------


_STAGE_WORDS = {
    "push-check": "checking push access{to}",
    "push": "pushing the image{to}",
    "pull": "pulling the base image",
}


def _stage_of(facts: RunFacts, match: CatalogueMatch) -> Optional[str]:
    """Where it failed: the wrappers say it best; else the log's last phase."""
    stage = match.peeled.stage if match.peeled else None
    if stage in _STAGE_WORDS:
        return stage
    phase = _phase(facts)
    if phase in PULL_PHASES:
        return "pull"
    if phase in PUSH_PHASES:
        return "push"
    return None


def _with_stage(summary: str, stage: Optional[str], match: CatalogueMatch) -> str:
    if stage is None or stage not in _STAGE_WORDS:
        return summary
    peeled = match.peeled
    where = (peeled.host or peeled.destination) if peeled else None
    head = _STAGE_WORDS[stage].format(to=f" to {where}" if where else "")
    return f"{head} failed: {summary}"


def _from_catalogue(facts: RunFacts, match: CatalogueMatch) -> Diagnosis:
    item = match.entry
    lines = list(facts.lines)
    evidence: list[str] = []
    fixes = list(item.fixes)
    summary = item.summary
    code = item.code
    stage = _stage_of(facts, match)
    if item.code == "run-step-failed":
        # the RUN output just above the error line says what failed
        start = max(_marker_index(lines[: match.index]) + 1, match.index - 4)
        evidence = [parse_line(x).raw for x in lines[start : match.index] if x.strip()]
        m = item.regex.search(match.peeled.cause if match.peeled else parse_line(match.line).msg)
        status = m.group(1) if m else None
        killed_by = m.group(2) if m else None
        if killed_by == "killed":
            # the older format (no exit status): SIGKILL inside the container is the kernel's
            # OOM killer in practice; a Jenkins abort sends SIGTERM
            code = "oom-killed"
            summary = (
                "a RUN process of the Dockerfile was killed with SIGKILL inside the build "
                "(usually the container's memory limit)"
            )
            fixes = [
                "lower the JVM/tool heap in that RUN, or raise the kaniko container's memory limit",
                "--compressed-caching=false; --snapshot-mode=redo",
            ]
        elif killed_by == "terminated":
            code = "terminated"
            summary = "a RUN process of the Dockerfile was stopped with SIGTERM (an abort)"
            fixes = ["check who stopped the build: a Jenkins abort or timeout(), or the pod"]
        elif status == "137":
            summary += (
                "; the RUN process was killed (exit 137 inside the build is usually its "
                "own memory use)"
            )
            fixes.append("lower the JVM/tool heap in that RUN, or raise the memory limit")
        elif status:
            summary += f" with exit status {status}"
        elif killed_by:
            summary += f" (signal: {killed_by})"
        stage = None
    elif item.code == "executor-missing":
        summary = f"{summary} (exit {facts.exit_code})"
        stage = None
    elif item.code in ("registry-auth", "registry-denied") and stage == "pull":
        # refused while fetching the base image: the base's registry, not the destination
        image, host = _base_being_pulled(lines[: match.index])
        where = f"{host} (base image {image})" if host and image else "the base image's registry"
        summary = f"refused access by {where}"
        fixes = [
            f"add an 'auths' entry for {host or 'the base image registry host'} to the docker "
            "config.json Kaniko reads (/kaniko/.docker/config.json)",
            "or copy the base image into your own registry and use that in FROM",
        ]
    elif item.code in ("dockerfile-missing", "copy-source-missing", "snapshot-timeout"):
        stage = None
    summary = _with_stage(summary, stage, match)
    evidence.append(match.line)
    marker = facts.log.last_marker if facts.log else None
    if marker and marker not in evidence:
        evidence.insert(0, marker)
    peeled = match.peeled
    cause = f"Kaniko's error line matches catalogue entry {item.id}"
    if peeled and peeled.wrappers:
        cause += f" by its innermost cause (under {len(peeled.wrappers)} wrapper(s))"
    return Diagnosis("failed", code, summary, evidence, fixes, cause)


# -- the decision ------------------------------------------------------------------------


def diagnose(facts: RunFacts) -> Diagnosis:
    """Decide the outcome and diagnosis of one executor run."""
    if facts.log is None:
        facts.log = LogState().feed_all(facts.lines)
    phase = _phase(facts)
    if facts.deadline_hit:
        return _push_timeout(facts) if phase in PUSH_PHASES else _build_timeout(facts)
    if facts.signals:
        who = (
            "ci-report received "
            + " and ".join(dict.fromkeys(facts.signals))
            + " and forwarded it to the executor"
        )
        return _terminated(facts, who)
    if facts.exit_code == 0:
        digest = facts.log.digest
        summary = "pushed" + (f" {digest}" if digest else "")
        return Diagnosis("pushed", None, summary)
    if facts.exit_code is None:
        return _terminated(
            facts,
            "the run never finished (no exit code recorded: the container or the shell was killed)",
        )
    lines = list(facts.lines)
    # After a kill, only the lines after the last phase marker can be Kaniko's final error.
    killed = signal_name(facts.exit_code) in ("SIGTERM", "SIGKILL", "SIGINT")
    after = _marker_index(lines) + 1 if killed else 0
    matches = [m for m in match_catalogue(lines) if m.index >= after]
    if matches:
        return _from_catalogue(facts, matches[0])
    sig = signal_name(facts.exit_code)
    if sig == "SIGKILL":
        return _oom(facts)
    if sig in ("SIGTERM", "SIGINT") or facts.exit_code == 124:
        src = "busybox timeout or " if facts.mode == "split" else ""
        return _terminated(
            facts,
            f"the executor was killed by {sig or 'timeout'} from outside ci-report "
            f"({src}Jenkins or the pod), not by ci-report's deadline",
        )
    if facts.exit_code in (126, 127):
        return Diagnosis(
            "failed",
            "executor-missing",
            f"the executor could not be started (exit {facts.exit_code}: not found or not "
            "executable)",
            _last_lines(lines, 2),
            ["use the kaniko :debug image (it has /busybox/sh) or pass --executor=<path>"],
            "exit 126/127 is the shell's 'cannot execute' / 'not found'",
        )
    evidence = _phase_evidence(facts) + [
        x for x in _last_lines(lines, 3) if x not in _phase_evidence(facts)
    ]
    return Diagnosis(
        "failed",
        "unknown",
        f"the executor exited {facts.exit_code} in phase '{phase}' after "
        f"{fmt_duration(facts.elapsed)} with no line ci-report recognises",
        evidence,
        [
            "read the last lines of the Kaniko log above; rerun with --verbosity=debug in the "
            "executor flags",
            "report the error line to the ci-report team so the catalogue learns it",
        ],
        "no catalogue entry matched",
    )
