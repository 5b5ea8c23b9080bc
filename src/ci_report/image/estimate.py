"""How many bytes a Kaniko build will push (and pull), before it runs.

Parts, per distinct destination repository (Kaniko's ``remote.Write`` runs once per destination;
blobs that already exist in a repository are skipped after a HEAD):

- ``base-layers``: layers of the final stage's base image that are not yet in the destination
  repository (HEAD each one). A base on the same registry as the destination is mounted across
  repositories, not uploaded.
- ``context``: files the final stage COPY/ADDs from the build context (after ``.dockerignore``)
  times a compression factor (already-compressed files such as ``.jar`` count at 0.95).
- ``built-layers``: RUN and ``COPY --from`` layers cannot be known before the build; when the
  destination tag already exists, its non-base layers minus the context part are the proxy.
- ``cache``: with ``--cache-repo`` the built layers are pushed there as well.
- ``config``: config blob and manifest (about 50 KB).

``pull_bytes`` is what Kaniko downloads: the full base image of every stage it builds.
Registry trouble never raises: the estimate says it was not reachable and falls back to the
context bytes plus a conservative, labelled guess for the base image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from ..console import Console, get_console
from ..errors import CiReportError
from .dockerfile import (
    Stage,
    copy_sources,
    final_chain,
    load_dockerignore,
    parse_dockerfile,
    used_stages,
)
from .units import fmt_bytes
from .wire import fields_from_wire, to_wire

__all__ = [
    "CONFIG_BYTES",
    "Estimate",
    "EstimatePart",
    "base_guess",
    "estimate_push",
    "fmt_bytes",
    "show_estimate",
]

MB = 1_000_000
CONFIG_BYTES = 50_000  # config blob + manifest, per destination repository
COMPRESSED_SUFFIXES = (
    ".jar", ".war", ".ear", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".png",
    ".jpg", ".jpeg", ".gif", ".webp", ".mp4", ".mp3", ".woff", ".woff2", ".whl", ".apk",
)  # fmt: skip
COMPRESSED_FACTOR = 0.95  # a fat JAR layer compresses to ~0.9-1.0 x JAR size

# Typical compressed linux/amd64 sizes (docs/image-sizing.md), used only as a labelled guess
# when the registry cannot be asked. First match wins; rounded up.
_BASE_GUESSES: list[tuple[tuple[str, ...], int, str]] = [
    (("distroless/static", "distroless/base"), 5 * MB, "distroless"),
    (("alpine",), 80 * MB, "an alpine-based image"),  # temurin jre-alpine is 74 MB
    (("-jdk", ":jdk", "jdk-", "/jdk"), 235 * MB, "a JDK image"),
    (("-jre", ":jre", "jre-", "/jre"), 125 * MB, "a JRE image"),
    (("python", "node"), 65 * MB, "a slim language runtime"),
]
DEFAULT_BASE_GUESS = 250 * MB


def base_guess(image: str) -> tuple[int, str]:
    """A conservative size guess for ``image`` and what it was based on."""
    name = image.lower()
    if "alpine" in name and ("jdk" in name):
        return 190 * MB, "an alpine JDK image"
    for needles, size, label in _BASE_GUESSES:
        if any(n in name for n in needles):
            return size, label
    return DEFAULT_BASE_GUESS, "an unknown image"


@dataclass
class EstimatePart:
    kind: str  # 'base-layers' | 'context' | 'built-layers' | 'cache' | 'config'
    bytes: int
    detail: str
    guess: bool = False  # not measured: a fallback or a proxy


@dataclass
class Estimate:
    total_bytes: int
    parts: list[EstimatePart]
    base_image: Optional[str]
    base_bytes_total: int
    base_bytes_present: int  # base layer bytes already in every destination repository
    reachable: bool
    notes: list[str]
    pull_bytes: int
    base_digest: Optional[str] = None
    base_layers: list[dict[str, Any]] = field(default_factory=list)  # digest, size, present
    destinations: list[dict[str, Any]] = field(default_factory=list)  # per repository
    context_bytes: int = 0  # raw bytes of the COPY/ADD sources (before compression)
    compression: float = 0.45

    @property
    def is_guess(self) -> bool:
        return any(p.guess for p in self.parts)

    def part(self, kind: str) -> int:
        return sum(p.bytes for p in self.parts if p.kind == kind)

    def to_dict(self) -> dict[str, Any]:
        """camelCase, as in the plan file and the report (``totalBytes``, ``isGuess``, ...)."""
        data: dict[str, Any] = to_wire(self)
        data["isGuess"] = self.is_guess
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Estimate:
        """The inverse of :meth:`to_dict` (the plan file's ``estimate``)."""
        kw = fields_from_wire(cls, data)
        kw["parts"] = [
            EstimatePart(**fields_from_wire(EstimatePart, p)) for p in kw.get("parts", [])
        ]
        for name, default in (
            ("total_bytes", 0),
            ("base_image", None),
            ("base_bytes_total", 0),
            ("base_bytes_present", 0),
            ("reachable", True),
            ("notes", []),
            ("pull_bytes", 0),
        ):
            kw.setdefault(name, default)
        return cls(**kw)

    def lines(self) -> list[str]:
        """Human lines for the console: the total, then one line per part, then notes."""
        head = f"push estimate: {fmt_bytes(self.total_bytes)}"
        if self.is_guess:
            head += " (includes a guess)"
        if not self.reachable:
            head += " [registry not reachable]"
        out = [head]
        for p in self.parts:
            out.append(f"{p.kind}: {fmt_bytes(p.bytes)} - {p.detail}")
        if self.pull_bytes:
            out.append(f"pull: {fmt_bytes(self.pull_bytes)} of base images for Kaniko to fetch")
        out.extend(f"note: {n}" for n in self.notes)
        return out


def show_estimate(estimate: Estimate, console: Optional[Console] = None) -> None:
    console = console or get_console()
    first, *rest = estimate.lines()
    (console.info if estimate.reachable else console.warn)(first)
    for line in rest:
        label, _, text = line.partition(": ")
        console.detail(label, text)


# -- the estimate ------------------------------------------------------------------------


class _Registries:
    """One client per registry host (tokens are reused), credentials from config.json."""

    def __init__(
        self,
        docker_config: Any,
        insecure: Sequence[str],
        factory: Optional[Callable[..., Any]],
        deadline: Optional[float] = None,
    ) -> None:
        self.docker_config = docker_config
        self.insecure = {h.lower() for h in insecure}
        self.factory = factory
        self.deadline = deadline
        self.clients: dict[str, Any] = {}

    def client(self, registry: str) -> Any:
        if registry not in self.clients:
            from .registry import RegistryClient

            creds = None
            helper_timeout = 10.0
            if self.deadline is not None:
                helper_timeout = min(helper_timeout, self.deadline - time.monotonic())
            if self.docker_config is not None:
                try:
                    creds = self.docker_config.resolve(registry, timeout=helper_timeout)
                except Exception:  # a broken helper must not break the estimate
                    creds = None
                if creds is not None:
                    for secret in creds.secrets():
                        get_console().add_secret(secret)
            insecure = registry.lower() in self.insecure
            if self.factory is not None:
                self.clients[registry] = self.factory(
                    registry, credentials=creds, insecure=insecure
                )
            else:
                self.clients[registry] = RegistryClient(
                    registry, credentials=creds, insecure=insecure, deadline=self.deadline
                )
        return self.clients[registry]


def _is_compressed(path: Path) -> bool:
    return path.name.lower().endswith(COMPRESSED_SUFFIXES)


def _root_base(chain: list[Stage]) -> Optional[Stage]:
    root = chain[0] if chain else None
    return root if root is not None and root.is_external else None


@dataclass
class _Sizing:
    """What the sections of :func:`estimate_push` share: the parsed Dockerfile, the registry
    clients, and the parts and notes they add."""

    stages: list[Stage]
    chain: list[Stage]
    regs: _Registries
    console: Console
    insecure: Sequence[str]
    platform: str
    notes: list[str] = field(default_factory=list)
    parts: list[EstimatePart] = field(default_factory=list)
    reachable: bool = True

    def trouble(self, what: str, err: Exception) -> None:
        kind = getattr(err, "kind", "unknown")
        if kind != "not-found":  # a missing image is an answer, not an unreachable registry
            self.reachable = False
        msg = getattr(err, "message", str(err))
        self.notes.append(f"{what}: {msg} ({kind})")
        self.console.debug(f"estimate: {what} failed: {msg}")


@dataclass
class _Base:
    """The final stage's base image as the registry describes it (or a guess)."""

    root: Optional[Stage]
    ref: Any = None  # ImageRef
    manifest: Any = None  # Manifest with known sizes, or None
    total: int = 0
    layers: list[dict[str, Any]] = field(default_factory=list)  # digest, size, present


def estimate_push(
    *,
    dockerfile: Path,
    context: Path,
    destinations: Sequence[str],
    docker_config: Any = None,
    build_args: Mapping[str, str] = {},
    compression: float = 0.45,
    cache_repo: Optional[str] = None,
    insecure_registries: Sequence[str] = (),
    platform: str = "linux/amd64",
    target: Optional[str] = None,
    client_factory: Optional[Callable[..., Any]] = None,
    console: Optional[Console] = None,
    deadline: Optional[float] = None,
) -> Estimate:
    """Size the push of ``dockerfile`` built in ``context`` to ``destinations``.

    Raises only for a Dockerfile that cannot be read or parsed (preflight reports those first);
    every registry problem becomes a note and ``reachable=False``. ``deadline`` (a
    ``time.monotonic()`` value) bounds every registry call and credential helper together.
    """
    dockerfile, context = Path(dockerfile), Path(context)
    try:
        text = dockerfile.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CiReportError(
            f"cannot read Dockerfile {dockerfile}", cause=exc.strerror or str(exc)
        ) from None
    stages = parse_dockerfile(text, build_args)
    run = _Sizing(
        stages=stages,
        chain=final_chain(stages, target),
        regs=_Registries(docker_config, insecure_registries, client_factory, deadline),
        console=console or get_console(),
        insecure=insecure_registries,
        platform=platform,
    )
    dest_refs = _destination_refs(run, destinations)
    base = _base_image(run)
    dest_info, present_everywhere = _base_part(run, base, dest_refs)
    n_repos = max(1, len(dest_refs))
    raw, weighted = _context_part(
        run, context, dockerfile, build_args, compression, target, n_repos
    )
    built_bytes, builds = _built_part(run, base, dest_refs, weighted, n_repos)
    _cache_part(run, cache_repo, builds, built_bytes)
    _config_part(run, n_repos)
    pull = _pull_bytes(run, base, target)
    return Estimate(
        total_bytes=sum(p.bytes for p in run.parts),
        parts=run.parts,
        base_image=base.root.base if base.root else None,
        base_bytes_total=base.total,
        base_bytes_present=present_everywhere or 0,
        reachable=run.reachable,
        notes=run.notes,
        pull_bytes=pull,
        base_digest=base.manifest.digest if base.manifest else None,
        base_layers=base.layers,
        destinations=dest_info,
        context_bytes=raw,
        compression=compression,
    )


def _destination_refs(run: _Sizing, destinations: Sequence[str]) -> list[Any]:
    """1. Destinations: one entry per distinct repository (blobs go once per repository)."""
    from .registry import parse_reference

    dest_refs = []
    seen_repos: set[tuple[str, str]] = set()
    for dest in destinations:
        try:
            ref = parse_reference(dest, insecure_registries=run.insecure)
        except CiReportError as err:
            run.notes.append(f"destination {dest!r} skipped: {err.message}")
            continue
        key = (ref.registry, ref.repository)
        if key in seen_repos:
            continue  # another tag in the same repository: blobs are already there
        seen_repos.add(key)
        dest_refs.append(ref)
    if len(dest_refs) < len(destinations):
        run.notes.append(
            f"{len(destinations)} destinations, {len(dest_refs)} distinct repositories: "
            "blobs are uploaded once per repository"
        )
    return dest_refs


def _base_image(run: _Sizing) -> _Base:
    """2. The final stage's base image: its manifest from the registry, else a guess."""
    from .registry import parse_reference

    base = _Base(_root_base(run.chain))
    root = base.root
    if root is not None:
        try:
            base.ref = parse_reference(root.base, insecure_registries=run.insecure)
        except CiReportError as err:
            run.notes.append(f"base image {root.base!r}: {err.message}")
        if base.ref is not None:
            try:
                client = run.regs.client(base.ref.registry)
                manifest = client.manifest(
                    base.ref.repository, base.ref.reference, platform=root.platform or run.platform
                )
                if manifest.skipped:
                    run.notes.append(
                        f"base index: picked {manifest.platform}, skipped "
                        f"{len(manifest.skipped)} attestation entr"
                        f"{'y' if len(manifest.skipped) == 1 else 'ies'}"
                    )
                if manifest.sizes_known:
                    base.manifest = manifest
                else:
                    run.notes.append(
                        f"{base.ref} has a Docker schema 1 manifest without layer sizes"
                    )
            except CiReportError as err:
                run.trouble(f"base image {base.ref}", err)
    if base.manifest is not None:
        base.total = base.manifest.layers_bytes
        base.layers = [
            {"digest": d.digest, "size": d.size, "present": []} for d in base.manifest.layers
        ]
    elif root is not None:
        guess, label = base_guess(root.base)
        base.total = guess
        run.notes.append(
            f"base image {root.base} not sized by the registry: guessed {fmt_bytes(guess)} "
            f"({label}; reference sizes), counted as not yet in the destination"
        )
    elif run.chain:
        run.notes.append("FROM scratch: no base layers")
    return base


def _base_part(
    run: _Sizing, base: _Base, dest_refs: list[Any]
) -> tuple[list[dict[str, Any]], Optional[int]]:
    """3. Base layers missing per destination repository (HEAD per layer, or a mount)."""
    root, manifest = base.root, base.manifest
    dest_info: list[dict[str, Any]] = []
    present_everywhere: Optional[int] = None
    missing_total = 0
    for ref in dest_refs:
        info: dict[str, Any] = {
            "repository": ref.name,
            "baseMissingBytes": 0,
            "basePresentBytes": 0,
            "reachable": True,
        }
        if root is None:
            pass
        elif manifest is None:
            info["baseMissingBytes"] = base.total
        elif base.ref is not None and base.ref.registry == ref.registry:
            info["basePresentBytes"] = base.total
            info["mounted"] = True
            run.notes.append(
                f"base layers of {base.ref.name} are on {ref.registry} already: Kaniko mounts "
                f"them into {ref.repository} instead of uploading"
            )
        else:
            client = run.regs.client(ref.registry)
            try:
                for layer in base.layers:
                    if client.blob_exists(ref.repository, layer["digest"]):
                        layer["present"].append(ref.name)
                        info["basePresentBytes"] += layer["size"]
                    else:
                        info["baseMissingBytes"] += layer["size"]
            except CiReportError as err:
                run.trouble(f"destination {ref.name}", err)
                info["reachable"] = False
                info["baseMissingBytes"] = base.total
                info["basePresentBytes"] = 0
        missing_total += info["baseMissingBytes"]
        present = info["basePresentBytes"]
        present_everywhere = (
            present if present_everywhere is None else min(present_everywhere, present)
        )
        dest_info.append(info)
    n_repos = max(1, len(dest_refs))
    if not dest_refs and root is not None:
        missing_total = base.total  # no destination: assume nothing is there
    if root is not None:
        if manifest is not None:
            n_layers = len(manifest.layers)
            present_b = sum(i["basePresentBytes"] for i in dest_info)
            detail = (
                f"{root.base} ({manifest.platform or run.platform}, {n_layers} layer"
                f"{'s' if n_layers != 1 else ''}, {fmt_bytes(base.total)} compressed)"
            )
            if present_b:
                detail += f"; {fmt_bytes(present_b)} already in the destination"
            if n_repos > 1:
                detail += f"; over {n_repos} repositories"
        else:
            detail = f"{root.base}: GUESS, the registry could not be asked"
        run.parts.append(EstimatePart("base-layers", missing_total, detail, guess=manifest is None))
    return dest_info, present_everywhere


def _context_part(
    run: _Sizing,
    context: Path,
    dockerfile: Path,
    build_args: Mapping[str, str],
    compression: float,
    target: Optional[str],
    n_repos: int,
) -> tuple[int, float]:
    """4. COPY/ADD sources from the context (after .dockerignore) x the compression factor;
    returns (raw bytes, compressed estimate for one repository)."""
    ignore = load_dockerignore(context, dockerfile)
    try:
        sources = copy_sources(run.stages, context, ignore, build_args=build_args, target=target)
    except CiReportError as err:
        run.notes.append(f"COPY/ADD sources not sized: {err.message}")
        sources = []
    raw = 0
    weighted = 0.0
    compressed_raw = 0
    for src in sources:
        for f in src.files:
            try:
                nbytes = f.lstat().st_size
            except OSError:
                continue
            raw += nbytes
            if _is_compressed(f):
                compressed_raw += nbytes
                weighted += nbytes * COMPRESSED_FACTOR
            else:
                weighted += nbytes * compression
    missing = [s for s in sources if s.missing]
    if missing:
        run.notes.append(
            "COPY/ADD sources missing in the context: "
            + ", ".join(f"{s.pattern} (line {s.line})" for s in missing[:5])
        )
    if sources:
        detail = f"{len(sources)} COPY/ADD source{'s' if len(sources) != 1 else ''}, "
        detail += f"{fmt_bytes(raw)} in the context"
        if compressed_raw and compressed_raw < raw:
            detail += (
                f" ({fmt_bytes(compressed_raw)} already compressed x {COMPRESSED_FACTOR}, "
                f"the rest x {compression})"
            )
        elif compressed_raw:
            detail += f" x {COMPRESSED_FACTOR} (already compressed: .jar, .zip, ...)"
        else:
            detail += f" x {compression} compression"
        if n_repos > 1:
            detail += f"; x {n_repos} repositories"
        run.parts.append(EstimatePart("context", int(weighted) * n_repos, detail))
    return raw, weighted


def _built_part(
    run: _Sizing, base: _Base, dest_refs: list[Any], weighted: float, n_repos: int
) -> tuple[int, list[Any]]:
    """5. RUN / COPY --from layers, sized from the previous image in the destination."""
    from .registry import RegistryError

    builds = [
        ins
        for stage in run.chain
        for ins in stage.instructions
        if ins.cmd == "RUN" or (ins.cmd in ("COPY", "ADD") and "from" in ins.flags)
    ]
    built_bytes = 0
    if builds and dest_refs:
        prev_ref = dest_refs[0]
        try:
            prev = run.regs.client(prev_ref.registry).manifest(
                prev_ref.repository, prev_ref.reference, platform=run.platform
            )
            base_digests = {d["digest"] for d in base.layers}
            non_base = sum(d.size for d in prev.layers if d.digest not in base_digests)
            if base.manifest is None and base.root is not None:
                non_base = max(0, non_base - base.total)
            built_bytes = max(0, non_base - int(weighted))
            run.parts.append(
                EstimatePart(
                    "built-layers",
                    built_bytes * n_repos,
                    f"{len(builds)} RUN/COPY --from step{'s' if len(builds) != 1 else ''}: "
                    f"proxy from the previous {prev_ref} ({fmt_bytes(non_base)} of non-base "
                    "layers, minus the context part)",
                    guess=True,
                )
            )
        except CiReportError as err:
            if isinstance(err, RegistryError) and err.kind == "not-found":
                run.notes.append(
                    f"{len(builds)} RUN/COPY --from step(s) not sized: no previous "
                    f"{prev_ref} to compare with (first push)"
                )
            else:
                run.trouble(f"previous image {prev_ref}", err)
    elif builds:
        run.notes.append(f"{len(builds)} RUN/COPY --from step(s) not sized (no destination)")
    return built_bytes, builds


def _cache_part(
    run: _Sizing, cache_repo: Optional[str], builds: list[Any], built_bytes: int
) -> None:
    """6. Cache pushes (--cache=true): the RUN layers once more, to the cache repository."""
    if not cache_repo:
        return
    if builds and built_bytes:
        run.parts.append(
            EstimatePart(
                "cache",
                built_bytes,
                f"RUN layers pushed again to {cache_repo} (--cache=true)",
                guess=True,
            )
        )
    else:
        run.notes.append(f"cache pushes to {cache_repo} not sized (no RUN layer size known)")


def _config_part(run: _Sizing, n_repos: int) -> None:
    """7. The image config and manifest."""
    run.parts.append(
        EstimatePart(
            "config",
            CONFIG_BYTES * n_repos,
            "image config and manifest (approx.)"
            + (f" x {n_repos} repositories" if n_repos > 1 else ""),
        )
    )


def _pull_bytes(run: _Sizing, base: _Base, target: Optional[str]) -> int:
    """8. Pull: every external base Kaniko builds from (the final base plus build stages)."""
    from .registry import RegistryError, parse_reference

    pull = base.total
    for stage in used_stages(run.stages, target):
        if not stage.is_external or stage is base.root:
            continue
        size: Optional[int] = None
        try:
            sref = parse_reference(stage.base, insecure_registries=run.insecure)
            size = (
                run.regs.client(sref.registry)
                .manifest(sref.repository, sref.reference, platform=stage.platform or run.platform)
                .layers_bytes
            )
        except CiReportError as err:
            if isinstance(err, RegistryError):
                run.trouble(f"build-stage base {stage.base}", err)
            size, label = base_guess(stage.base)
            run.notes.append(
                f"build-stage base {stage.base} guessed at {fmt_bytes(size)} ({label})"
            )
        pull += size or 0
    return pull
