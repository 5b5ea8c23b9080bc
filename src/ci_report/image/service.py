"""``image-push``, ``image-plan`` and ``image-diagnose`` as plain Python functions.

Each takes a :class:`PushRequest` (built from Settings by the CLI) and a Console, and returns
the exit code: the executor's own, 0 on success or skip, 1 when preflight stops the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, TypeVar

from .command import build_args_of, executor_args, executor_env, first_value, flag_values
from .diagnosis import Diagnosis, RunFacts, diagnose, fmt_bytes, fmt_duration
from .estimate import Estimate
from .preflight import Preflight, run_preflight
from .report import build_report, print_summary, write_report
from .timeout import TimeoutPlan

__all__ = ["Prepared", "PushRequest", "image_diagnose", "image_plan", "image_push", "prepare"]

T = TypeVar("T")
DEFAULT_DOCKER_IMAGE = "ghcr.io/osscontainertools/kaniko:latest"
PREPARE_SECONDS = 120.0


@dataclass
class PushRequest:
    context: str = "."
    dockerfile: Optional[str] = None
    destinations: list[str] = field(default_factory=list)
    executor: str = "/kaniko/executor"
    extra_args: list[str] = field(default_factory=list)
    mode: str = "direct"  # direct | docker | split
    timeout: str = "auto"
    bandwidth: Optional[float] = None  # MB/s
    report: Optional[str] = None
    history_path: Optional[Path] = None
    docker_config: Optional[str] = None
    timeout_floor: float = 600.0
    timeout_cap: float = 10_800.0
    kill_grace: float = 30.0
    heartbeat: float = 30.0
    skip_if_no_dockerfile: bool = False
    # preflight and the estimate together: every registry call and credential helper ends by
    # then (a slow or hanging registry only costs the estimate, never the build)
    prepare_seconds: float = PREPARE_SECONDS

    @classmethod
    def from_settings(
        cls, settings: Any, extra_args: Sequence[str] = (), mode: str = "direct"
    ) -> PushRequest:
        return cls(
            context=settings.context,
            dockerfile=settings.dockerfile,
            destinations=list(settings.destinations),
            executor=settings.executor,
            extra_args=list(extra_args),
            mode=mode,
            timeout=str(settings.timeout),
            bandwidth=settings.bandwidth,
            report=settings.report,
            history_path=settings.history_path,
            docker_config=settings.docker_config,
            timeout_floor=settings.timeout_floor,
            timeout_cap=settings.timeout_cap,
            kill_grace=settings.kill_grace,
            heartbeat=settings.heartbeat,
            skip_if_no_dockerfile=settings.skip_if_no_dockerfile,
        )

    def validate(self) -> None:
        """Flag values that make no sense stop the run before anything else happens (the
        limits are the settings' own: ``config.Limit``)."""
        from ..config import limit_error

        _ = self.explicit_timeout
        for name in ("bandwidth", "kill_grace", "heartbeat"):
            error = limit_error(name, getattr(self, name))
            if error is not None:
                raise error

    @property
    def explicit_timeout(self) -> Optional[int]:
        """``None`` for 'auto', else whole seconds (a fraction is cut: ``1800.5`` -> 1800)."""
        from ..config import limit_error

        text = str(self.timeout).strip().lower()
        if text in ("", "auto"):
            return None
        error = limit_error("timeout", text)
        if error is not None:
            raise error
        return max(1, int(float(text)))


@dataclass
class Prepared:
    preflight: Preflight
    estimate: Optional[Estimate] = None
    plan: Optional[TimeoutPlan] = None
    timeout: Optional[int] = None

    @property
    def estimate_dict(self) -> Optional[dict[str, Any]]:
        return self.estimate.to_dict() if self.estimate is not None else None

    @property
    def registry_host(self) -> str:
        return registry_host(self.preflight_destinations)

    preflight_destinations: list[str] = field(default_factory=list)


def registry_host(destinations: Sequence[str]) -> str:
    from .registry import parse_reference

    for dest in destinations:
        try:
            return parse_reference(dest).registry
        except Exception:  # preflight already reported it
            continue
    return "unknown"


# -- the shared steps --------------------------------------------------------------------


def _preflight_diagnosis(pf: Preflight) -> Diagnosis:
    first = pf.problems[0]
    fixes = [first.fix] + [f"also: {p.message}" for p in pf.problems[1:4]]
    return Diagnosis(
        "failed",
        first.code,
        first.message,
        list(first.evidence),
        fixes,
        "preflight stopped the run before the executor started",
    )


def _finish_early(req: PushRequest, pf: Preflight, console: Any) -> int:
    if pf.skipped:
        diag = Diagnosis("skipped", None, "no Dockerfile: skipped (--skip-if-no-dockerfile)")
        code = 0
    else:
        diag = _preflight_diagnosis(pf)
        code = 1
    report = build_report(
        diagnosis=diag,
        exit_code=code,
        phase="preflight",
        elapsed=0.0,
        timeout=None,
        estimate=None,
        destinations=req.destinations,
        mode=req.mode,
    )
    print_summary(console, report, diag)
    if pf.skipped:
        console.detail("dockerfile", str(resolve_missing(req, pf)))
    if req.report:
        write_report(req.report, report)
    return code


def _finish_interrupted(req: PushRequest, err: Any, console: Any) -> int:
    """A SIGTERM/SIGINT before the executor started: nothing was built, exit 143/130."""
    import signal as _signal

    name = _signal.Signals(err.signum).name
    diag = Diagnosis(
        "terminated",
        "terminated",
        f"ci-report received {name} during preflight and the size estimate, before the "
        "executor started: nothing was built or pushed",
        [],
        [
            "if a Jenkins timeout() wraps this step, give it room for the estimate as well "
            "(registry calls time out after a few seconds each)",
            "a pod deletion or eviction also sends SIGTERM: check the pod events",
        ],
        f"ci-report itself received {name}",
    )
    report = build_report(
        diagnosis=diag,
        exit_code=err.exit_code,
        phase="preflight",
        elapsed=0.0,
        timeout=None,
        estimate=None,
        destinations=req.destinations,
        mode=req.mode,
        signals=[name],
    )
    print_summary(console, report, diag)
    if req.report:
        write_report(req.report, report)
    return int(err.exit_code)


def _prepare_guarded(req: PushRequest, console: Any) -> Any:
    """:func:`prepare` under a signal guard: a Prepared, or the exit code after a signal."""
    from ..errors import Interrupted
    from .interrupt import guard

    try:
        with guard():
            return prepare(req, console)
    except Interrupted as err:
        return _finish_interrupted(req, err, console)


def resolve_missing(req: PushRequest, pf: Preflight) -> str:
    return next((v for k, v in pf.facts if k == "dockerfile"), req.dockerfile or "Dockerfile")


def prepare(req: PushRequest, console: Any) -> Prepared:
    """Preflight, then (if it passed) the estimate and the timeout plan, all shown. One deadline
    (``prepare_seconds`` from now) bounds both."""
    req.validate()
    deadline = time.monotonic() + req.prepare_seconds
    pf = run_preflight(
        context=req.context,
        dockerfile=req.dockerfile,
        destinations=req.destinations,
        executor=req.executor,
        extra_args=req.extra_args,
        docker_config=req.docker_config,
        mode=req.mode,
        skip_if_no_dockerfile=req.skip_if_no_dockerfile,
    )
    from .interrupt import check as interrupted

    interrupted()
    prepared = Prepared(pf, preflight_destinations=list(req.destinations))
    for warning in pf.warnings:
        console.warn(warning)
    if not pf.ok:
        return prepared
    console.info("preflight passed", checks=len(pf.facts))
    for label, value in pf.facts:
        console.detail(label, value)
    explicit = req.explicit_timeout
    prepared.estimate = _estimate(req, pf, console, deadline)
    prepared.plan = _plan(req, prepared, explicit, console)
    prepared.timeout = (
        int(prepared.plan.seconds)
        if prepared.plan is not None
        else explicit or int(req.timeout_cap)
    )
    return prepared


def _estimate(req: PushRequest, pf: Preflight, console: Any, deadline: float) -> Optional[Estimate]:
    from .estimate import estimate_push, show_estimate

    extra = req.extra_args
    assert pf.dockerfile is not None  # preflight passed
    cache = "true" in flag_values(extra, "--cache", boolean=True)
    try:
        estimate = estimate_push(
            dockerfile=pf.dockerfile,
            context=pf.context,
            destinations=req.destinations,
            docker_config=pf.docker_config,
            build_args=build_args_of(extra),
            cache_repo=(first_value(extra, "--cache-repo") or "") if cache else None,
            insecure_registries=tuple(flag_values(extra, "--insecure-registry")),
            target=first_value(extra, "--target"),
            console=console,
            deadline=deadline,
        )
    except Exception as exc:  # the estimate informs the timeout; it never stops a build
        from .interrupt import check as interrupted

        interrupted()  # ... but a SIGTERM does
        console.warn(
            f"push estimate failed ({getattr(exc, 'message', exc)}): the timeout "
            "falls back to the defaults"
        )
        return None
    show_estimate(estimate, console)
    return estimate


def _plan(
    req: PushRequest, prepared: Prepared, explicit: Optional[int], console: Any
) -> Optional[TimeoutPlan]:
    from .history import PushHistory
    from .timeout import plan_timeout, show_plan

    history = PushHistory(req.history_path) if req.history_path else None
    try:
        plan = plan_timeout(
            prepared.estimate,
            registry_host=prepared.registry_host,
            history=history,
            explicit=explicit,
            bandwidth_mbps=req.bandwidth,
            floor=req.timeout_floor,
            cap=req.timeout_cap,
        )
    except Exception as exc:
        from .interrupt import check as interrupted

        interrupted()
        console.warn(f"timeout planning failed ({getattr(exc, 'message', exc)})")
        return None
    show_plan(plan, console)
    return plan


def _facts(req: PushRequest, prepared: Prepared, **kw: Any) -> RunFacts:
    plan = prepared.plan
    return RunFacts(
        estimate=prepared.estimate_dict,
        bandwidth_bps=plan.bandwidth_bps if plan else None,
        expected_push_s=plan.expected_push_s if plan else None,
        timeout_floor=req.timeout_floor,
        timeout_cap=req.timeout_cap,
        timeout_source=plan.source if plan else None,
        mode=req.mode,
        **kw,
    )


def conclude(
    req: PushRequest,
    prepared: Prepared,
    facts: RunFacts,
    console: Any,
    *,
    report_path: Optional[str] = None,
    executor_version: Optional[str] = None,
) -> int:
    """Diagnose, print the summary, write the report, record push history on success."""
    diag = diagnose(facts)
    log = facts.log
    push_s = log.push_seconds() if log else None
    digest = log.digest if log else None
    report = build_report(
        diagnosis=diag,
        exit_code=facts.exit_code,
        phase=log.phase if log else None,
        elapsed=facts.elapsed,
        timeout=facts.timeout,
        estimate=facts.estimate,
        destinations=req.destinations,
        digest=digest,
        mode=req.mode,
        digests=dict(log.digests) if log and log.digests else None,
        pushSeconds=None if push_s is None else round(push_s, 2),
        signals=list(facts.signals) or None,
        executorVersion=executor_version,
        timeoutSource=facts.timeout_source,
    )
    if diag.outcome == "pushed":
        _record_history(req, prepared, facts, console)
    print_summary(console, report, diag)
    path = report_path or req.report
    if path:
        write_report(path, report)
        console.info(f"report: {path}")
    if diag.outcome == "pushed":
        return 0
    return facts.exit_code if facts.exit_code not in (None, 0) else 1


def _record_history(req: PushRequest, prepared: Prepared, facts: RunFacts, console: Any) -> None:
    from .history import PushHistory

    log = facts.log
    seconds = log.push_seconds() if log else None
    size = facts.push_bytes
    if not req.history_path or not seconds or not size:
        console.debug("push history not updated: push duration or size unknown")
        return
    if (facts.estimate or {}).get("isGuess"):
        console.info(
            f"push history not updated: the push size ({fmt_bytes(size)}) includes a "
            "guess, so bytes/seconds would not be the bandwidth"
        )
        return
    if (facts.estimate or {}).get("reachable") is False:
        # base layers that could not be HEAD-checked count as missing: an upper bound, which
        # would overstate the bandwidth and shorten the next timeouts
        console.info(
            f"push history not updated: the registry could not be asked during the estimate, "
            f"so {fmt_bytes(size)} is an upper bound, not the bytes that were sent"
        )
        return
    rate = PushHistory(req.history_path).record(
        prepared.registry_host, size, seconds, build_seconds=log.build_seconds() if log else None
    )
    text = f"push history: {prepared.registry_host} {fmt_bytes(size)} in {fmt_duration(seconds)}"
    if rate:
        text += f", bandwidth now {rate / 1e6:.2f} MB/s"
    else:
        text += " (too small or too quick to measure bandwidth; kept for the build time)"
    console.info(text)


# -- image-push --------------------------------------------------------------------------


def image_push(req: PushRequest, console: Any) -> int:
    """Preflight, estimate, timeout, then run the executor (direct or docker) and diagnose."""
    from .runner import Expectations, ProcessHandle, Supervisor

    prepared = _prepare_guarded(req, console)
    if isinstance(prepared, int):
        return prepared
    pf = prepared.preflight
    if not pf.ok:
        return _finish_early(req, pf, console)
    plan = prepared.plan
    sup = Supervisor(
        console,
        timeout=prepared.timeout,
        kill_grace=req.kill_grace,
        heartbeat=req.heartbeat,
        expect=Expectations(
            push_s=plan.expected_push_s if plan else None,
            build_s=(plan.expected_pull_s + plan.expected_build_s) or None if plan else None,
            push_bytes=prepared.estimate.total_bytes if prepared.estimate else None,
        ),
    )
    assert pf.dockerfile is not None
    if req.mode == "docker":
        from .docker_mode import DockerRun

        image = req.executor if not req.executor.startswith("/") else DEFAULT_DOCKER_IMAGE
        run = DockerRun(
            image=image,
            context=pf.context,
            dockerfile=pf.dockerfile,
            destinations=req.destinations,
            extra_args=req.extra_args,
            docker_config=pf.docker_config.path if pf.docker_config is not None else None,
            stop_grace=req.kill_grace,
        )
        console.info(
            f"starting {image} through the Docker Engine API (timeout {prepared.timeout} s)"
        )
        result = sup.run(run.start)
    else:
        argv = [
            req.executor,
            *executor_args(
                context=str(pf.context),
                dockerfile=str(pf.dockerfile),
                destinations=req.destinations,
                extra=req.extra_args,
            ),
        ]
        console.info(f"starting {req.executor} (timeout {prepared.timeout} s)")
        result = sup.run(lambda: ProcessHandle(argv, env=executor_env()))
    facts = _facts(
        req,
        prepared,
        exit_code=result.exit_code,
        elapsed=result.elapsed,
        timeout=prepared.timeout,
        deadline_hit=result.deadline_hit,
        signals=result.signals,
        lines=result.lines,
        log=result.log,
    )
    return conclude(req, prepared, facts, console, executor_version=pf.executor_version)


# -- split mode --------------------------------------------------------------------------


def image_plan(req: PushRequest, workdir: str, console: Any) -> tuple[int, dict[str, Any]]:
    """Preflight + estimate + timeout; write the busybox script and the plan JSON."""
    from .split import write_plan

    req.mode = "split"
    prepared = _prepare_guarded(req, console)
    if isinstance(prepared, int):
        return prepared, {}
    pf = prepared.preflight
    if not pf.ok and not pf.skipped:
        return _finish_early(req, pf, console), {}
    if not pf.skipped:
        _warn_workdir_in_context(workdir, pf, console)
    plan = write_plan(req, prepared, workdir)
    console.info(
        f"plan: {plan.plan}; run {plan.script} in the kaniko container, then "
        f"ci-report image-diagnose --plan {plan.plan} --step-exit <its exit status>"
    )
    if pf.skipped:
        return _finish_early(req, pf, console), plan.to_dict()
    return 0, plan.to_dict()


def _untrusted_run(run: Any, plan_path: str) -> Diagnosis:
    """The script's files are missing, stale or contradict the step: never 'pushed' from them."""
    step = run.exit_code
    if run.never_ran:
        return Diagnosis(
            "failed",
            "script-never-ran",
            "the kaniko step exited 127 and the script left no file of this run: it never ran",
            [x for x in [run.refused] if x],
            [
                "the container step did not start the script (durable-task's 'process "
                "apparently never started'): check that the kaniko container uses the :debug "
                "image, shell '/busybox/sh', and that the work folder is shared by both "
                "containers",
                "rerun the build; if it repeats, look at the agent pod's events",
            ],
            "exit 127 from the step and no rc, log or times file newer than the plan",
        )
    return Diagnosis(
        "failed",
        "stale-result",
        "the result files cannot be trusted: " + str(run.refused),
        [f"plan: {plan_path}", f"kaniko step exit status: {step}"],
        [
            "rerun the build: image-plan removes the previous run's rc, log, times and version "
            "files, and the script writes fresh ones",
            "run image-plan, the script and image-diagnose with the same --workdir",
        ],
        "nothing proves that this build's push happened",
    )


def _warn_workdir_in_context(workdir: str, pf: Preflight, console: Any) -> None:
    from .dockerfile import load_dockerignore
    from .split import workdir_in_context

    ignore = load_dockerignore(pf.context, pf.dockerfile)
    inside = workdir_in_context(workdir, pf.context, ignore)
    if inside is None:
        return
    console.block(
        f"the work folder {workdir} is inside the build context and .dockerignore does not "
        "exclude it",
        level="warning",
        cause="Kaniko copies the script, the plan (with every --build-arg value) and the live "
        "log into the image with COPY . ., and no layer is ever reused",
        fixes=[
            f"add '{inside}' to {ignore.source or Path(pf.context) / '.dockerignore'}",
            'or use a work folder outside the context: --workdir "$WORKSPACE_TMP/'
            'ci-report-image" (the default when WORKSPACE_TMP is set)',
        ],
    )


def image_diagnose(
    plan_path: str,
    console: Any,
    report: Optional[str] = None,
    step_exit: Optional[int] = None,
) -> int:
    from .split import load_plan, read_run

    plan = load_plan(plan_path)
    req = PushRequest(
        context=plan.context,
        dockerfile=plan.dockerfile,
        destinations=list(plan.destinations),
        mode="split",
        report=report or plan.report,
        history_path=Path(plan.history_path) if plan.history_path else None,
        timeout_floor=float(plan.timeout_floor),
        timeout_cap=float(plan.timeout_cap),
    )
    if plan.skipped:
        diag = Diagnosis("skipped", None, "no Dockerfile: skipped (--skip-if-no-dockerfile)")
        rep = build_report(
            diagnosis=diag,
            exit_code=0,
            phase="preflight",
            elapsed=0.0,
            timeout=None,
            estimate=None,
            destinations=req.destinations,
            mode="split",
        )
        print_summary(console, rep, diag)
        if req.report:
            write_report(req.report, rep)
        return 0
    run = read_run(plan, plan_path, step_exit=step_exit)
    for warning in run.warnings:
        console.warn(warning)
    if run.refused or run.never_ran:
        diag = _untrusted_run(run, plan_path)
        code = run.exit_code if run.exit_code not in (None, 0) else 1
        rep = build_report(
            diagnosis=diag,
            exit_code=code,
            phase=run.log.phase if run.lines else None,
            elapsed=run.elapsed,
            timeout=float(plan.timeout_seconds),
            estimate=plan.estimate,
            destinations=req.destinations,
            mode="split",
        )
        print_summary(console, rep, diag)
        if req.report:
            write_report(req.report, rep)
            console.info(f"report: {req.report}")
        return int(code)
    if run.flags:
        console.detail("kaniko flags added", " ".join(run.flags))
    prepared = Prepared(
        Preflight(context=Path(req.context), dockerfile=None),
        preflight_destinations=req.destinations,
    )
    prepared.estimate = _typed(Estimate.from_dict, plan.estimate)
    prepared.plan = _typed(TimeoutPlan.from_dict, plan.timeout_plan)
    facts = _facts(
        req,
        prepared,
        exit_code=run.exit_code,
        elapsed=run.elapsed,
        timeout=float(plan.timeout_seconds),
        deadline_hit=run.deadline_hit,
        signals=(),
        lines=run.lines,
        log=run.log,
    )
    facts.estimate = plan.estimate
    return conclude(
        req, prepared, facts, console, report_path=req.report, executor_version=run.version
    )


def _typed(parse: Callable[[Any], T], data: Any) -> Optional[T]:
    """A plan file's estimate or timeout plan, typed; None when absent or not readable (an
    unreadable part only costs its figures, never the diagnosis)."""
    if not data:
        return None
    try:
        return parse(data)
    except (TypeError, ValueError):
        return None
