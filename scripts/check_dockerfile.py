"""Check the Dockerfile without a Docker engine by running what it says, outside a container.

Usage: python scripts/check_dockerfile.py [--keep]

No Docker engine runs on the development or CI machine, so the image is never built there.
This script reads the Dockerfile and runs its instructions on this machine, with the image's
absolute paths moved into a temporary directory (/opt/signoff, /src, /data, /policies):

- FROM: a Debian-slim Python image (the CEL engine has no musl wheels), and this Python's
  minor version must be the image's;
- COPY: the build context (as .dockerignore leaves it) into the moved paths;
- RUN in the build stage: run exactly as written, by /bin/sh, in WORKDIR (the venv install);
  RUN in the final stage creates the image's user, which needs root in a fresh image: skipped;
- ENV, USER (must not be root), VOLUME (must be /data and /policies), EXPOSE;
- ENTRYPOINT: started as a process, with the ENV (paths moved, the exposed ports moved to
  free ones) and a tokens file, as docs/operators.md tells operators to mount;
- HEALTHCHECK: its exact CMD is run until it succeeds, within its start period and retries;
- then one Evaluate through the installed client, SIGTERM, and an exit status of 0.

It prints the installed size of the image's virtualenv. `--keep` leaves the directory.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOVED = ("/opt/signoff", "/src", "/data", "/policies")


@dataclass
class Stage:
    """One FROM ... stage: its instructions, as (keyword, argument text) pairs."""

    image: str
    name: str
    steps: list[tuple[str, str]] = field(default_factory=list)


def parse(text: str) -> list[Stage]:
    """The Dockerfile's stages; continuation lines joined, comments dropped."""
    stages: list[Stage] = []
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, arg = logical.partition(" ")
        logical = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            image, _, name = arg.partition(" AS ")
            stages.append(Stage(image.strip(), name.strip()))
        elif not stages:
            raise SystemExit(f"Dockerfile: {keyword} before FROM")
        else:
            stages[-1].steps.append((keyword, arg.strip()))
    return stages


class Mover:
    """Moves the image's absolute paths (and exposed ports) into this machine's."""

    def __init__(self, root: Path, ports: dict[str, str]) -> None:
        self.root = root
        self.ports = ports
        alternatives = "|".join(re.escape(p) for p in MOVED)
        self._paths = re.compile(rf"(?<![\w.])({alternatives})(?=[/\s\"':]|$)")

    def path(self, image_path: str) -> Path:
        """Where an absolute image path lives here."""
        return Path(self.text(image_path))

    def text(self, text: str) -> str:
        """`text` with every moved path (and port) replaced, in one pass."""
        moved = self._paths.sub(lambda m: str(self.root / m.group(1).lstrip("/")), text)
        for old, new in self.ports.items():
            moved = re.sub(rf"(?<=:){old}\b", new, moved)
        return moved


def dockerignore() -> list[str]:
    """The patterns of .dockerignore (the build context sent to Docker)."""
    path = ROOT / ".dockerignore"
    if not path.is_file():
        return []
    lines = (ln.strip() for ln in path.read_text().splitlines())
    return [ln.rstrip("/") for ln in lines if ln and not ln.startswith("#")]


def ignored(rel: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `rel` (relative to the context) out of the build context."""
    parts = rel.split("/")
    for pattern in patterns:
        if pattern.startswith("**/"):
            tail = pattern[3:]
            if any(fnmatch.fnmatch("/".join(parts[i:]), tail) for i in range(len(parts))):
                return True
        elif fnmatch.fnmatch(rel, pattern) or any(
            fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts))
        ):
            return True
    return False


def copy(sources: list[str], dest: str, mover: Mover, workdir: Path, patterns: list[str]) -> None:
    """COPY from the build context, as Docker does for files and directories."""
    target = mover.path(dest) if dest.startswith("/") else workdir / dest
    for source in sources:
        src = ROOT / source
        if ignored(source, patterns) or not src.exists():
            raise SystemExit(f"COPY {source}: not in the build context")
        if src.is_dir():
            shutil.copytree(
                src,
                target,
                dirs_exist_ok=True,
                ignore=lambda d, names: [
                    n for n in names if ignored(str((Path(d) / n).relative_to(ROOT)), patterns)
                ],
            )
        else:
            into = target / src.name if dest.endswith("/") else target
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, into)


def env_pairs(arg: str) -> dict[str, str]:
    """ENV key=value pairs (the legacy `ENV key value` form too)."""
    words = shlex.split(arg)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words)


def expand(value: str, env: dict[str, str]) -> str:
    """$VAR and ${VAR} from the environment built so far, as Docker expands ENV values."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def seconds(option: str, default: float) -> float:
    """A HEALTHCHECK duration such as 10s, 1m30s or 500ms."""
    if not option:
        return default
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|s|m|h)", option))


def healthcheck(arg: str) -> tuple[dict[str, str], list[str]]:
    """HEALTHCHECK options and its command (exec form, or shell form run by /bin/sh -c)."""
    options: dict[str, str] = {}
    while arg.startswith("--"):
        option, _, arg = arg.partition(" ")
        key, _, value = option[2:].partition("=")
        options[key] = value
        arg = arg.strip()
    keyword, _, command = arg.partition(" ")
    if keyword.upper() != "CMD":
        raise SystemExit(f"HEALTHCHECK: expected CMD, got {keyword}")
    command = command.strip()
    argv = json.loads(command) if command.startswith("[") else ["/bin/sh", "-c", command]
    return options, argv


def step(message: str) -> None:
    print(f"dockerfile: {message}", flush=True)


def check(root: Path) -> None:
    """Run the Dockerfile in `root`; SystemExit with a message on the first problem."""
    stages = parse((ROOT / "Dockerfile").read_text())
    exposed: list[str] = []
    for stage in stages:
        for keyword, arg in stage.steps:
            if keyword == "EXPOSE":
                exposed += [p.split("/")[0] for p in arg.split()]
    mover = Mover(root, {port: free_port() for port in exposed})
    patterns = dockerignore()
    ours = f"{sys.version_info.major}.{sys.version_info.minor}"
    shims = root / "shims"
    shims.mkdir()
    (shims / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    env: dict[str, str] = {}
    healthcheck_arg = entrypoint = user = ""
    volumes: list[str] = []
    for index, stage in enumerate(stages):
        final = index == len(stages) - 1
        if "alpine" in stage.image or "slim" not in stage.image:
            raise SystemExit(f"FROM {stage.image}: use a Debian-slim image (no musl wheels)")
        tag = re.search(r"python:(\d+\.\d+)", stage.image)
        if tag is None or tag.group(1) != ours:
            raise SystemExit(f"FROM {stage.image}: this check runs Python {ours}")
        step(f"FROM {stage.image}" + (f" AS {stage.name}" if stage.name else ""))
        workdir = root
        stage_env: dict[str, str] = {}  # stages do not share ENV
        for keyword, arg in stage.steps:
            if keyword == "WORKDIR":
                workdir = mover.path(arg)
                workdir.mkdir(parents=True, exist_ok=True)
            elif keyword == "COPY":
                words = arg.split()
                if words[0].startswith("--from="):
                    # The earlier stage's files are already where the moved path points.
                    step(f"COPY {arg}: same moved path")
                    continue
                copy(words[:-1], words[-1], mover, workdir, patterns)
                step(f"COPY {arg}")
            elif keyword == "RUN" and not final:
                command = mover.text(arg)
                step(f"RUN {command}")
                # The image's `python` is the base interpreter; so is this one's.
                run_env = {**os.environ, **stage_env, "PATH": f"{shims}:{os.environ['PATH']}"}
                for key in [k for k in run_env if k.startswith(("VIRTUAL_ENV", "PYTHON"))]:
                    run_env.pop(key)  # the CI's own virtualenv must not leak into the image's
                started = time.monotonic()
                done = subprocess.run(
                    ["/bin/sh", "-c", command], cwd=workdir, env=run_env,
                    capture_output=True, text=True,
                )  # fmt: skip
                if done.returncode:
                    tail = (done.stdout + done.stderr).splitlines()[-30:]
                    raise SystemExit(f"RUN exited {done.returncode}:\n" + "\n".join(tail))
                step(f"  took {time.monotonic() - started:.0f} s")
            elif keyword == "RUN":
                step(f"RUN skipped (creates the image's user; needs root): {arg[:60]}...")
            elif keyword == "ENV":
                for key, value in env_pairs(arg).items():
                    stage_env[key] = expand(mover.text(value), {**os.environ, **stage_env})
            elif keyword == "USER":
                user = arg
            elif keyword == "VOLUME":
                volumes = json.loads(arg) if arg.startswith("[") else arg.split()
            elif keyword == "HEALTHCHECK":
                healthcheck_arg = arg
            elif keyword == "ENTRYPOINT":
                entrypoint = arg
        env = stage_env
    if user in ("", "root", "0") or user.startswith("0:"):
        raise SystemExit(f"USER {user or '(none)'}: the image must not run as root")
    if sorted(volumes) != ["/data", "/policies"]:
        raise SystemExit(f"VOLUME {volumes}: expected /data and /policies")
    if not healthcheck_arg or not entrypoint.startswith("["):
        raise SystemExit("the image needs a HEALTHCHECK and an exec-form ENTRYPOINT")
    for path in volumes:
        mover.path(path).mkdir(parents=True, exist_ok=True)
    size = sum(f.stat().st_size for f in mover.path("/opt/signoff").rglob("*") if f.is_file())
    step(f"virtualenv /opt/signoff: {size / 1e6:.0f} MB installed")
    serve(env, json.loads(entrypoint), healthcheck(healthcheck_arg), mover)


def serve(
    image_env: dict[str, str],
    entrypoint: list[str],
    probe: tuple[dict[str, str], list[str]],
    mover: Mover,
) -> None:
    """Start the ENTRYPOINT, wait for the HEALTHCHECK, Evaluate once, SIGTERM, exit 0."""
    data = mover.path("/data")
    # A clean environment: what the image sets, not what this machine's shell has.
    env = {"HOME": str(data), "LANG": "C.UTF-8", **image_env}
    token_out = subprocess.run(
        ["signoff", "token", "new", "ci-agent", "--role", "agent"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    token = token_out.stderr.strip().rsplit(" ", 1)[-1]
    tokens = mover.root / "secrets" / "tokens.yaml"
    tokens.parent.mkdir()
    tokens.write_text("tokens:\n" + token_out.stdout)
    env["SIGNOFF_AUTH__TOKENS_FILE"] = str(tokens)
    step(f"ENTRYPOINT {entrypoint} (listen {env.get('SIGNOFF_LISTEN')})")
    log_path = mover.root / "serve.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(entrypoint, env=env, cwd=data, stderr=log_file)
    try:
        options, argv = probe
        period = seconds(options.get("start-period", ""), 0)
        interval = seconds(options.get("interval", ""), 30)
        timeout = seconds(options.get("timeout", ""), 30)
        retries = int(options.get("retries") or 3)
        # Docker probes every `interval`; probing more often only finds health sooner.
        deadline = time.monotonic() + period + interval * retries
        started = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited ({proc.returncode}):\n{log_path.read_text()}")
            try:
                result = subprocess.run(
                    argv, env=env, capture_output=True, text=True, timeout=timeout
                )
            except subprocess.TimeoutExpired:
                result = subprocess.CompletedProcess(argv, 1, "", f"timed out after {timeout} s")
            if result.returncode == 0:
                step(f"HEALTHCHECK {argv}: healthy after {time.monotonic() - started:.1f} s")
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"HEALTHCHECK never succeeded: {result.stderr.strip()}")
            time.sleep(0.25)
        evaluate(env, token)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        log = log_path.read_text()
        if code != 0 or '"server.stopped"' not in log:
            raise SystemExit(f"SIGTERM: exit status {code}:\n{log}")
        step("SIGTERM: exit status 0")
        key = data / "state" / "signoff-audit-key.pem"
        if not (data / "signoff.db").exists() or not key.exists():
            raise SystemExit("the database and the signing key (in state/) belong in /data")
        if (data / "signoff-audit-key.pem").exists():
            raise SystemExit("the signing key was written beside the database")
        modes = (key.parent.stat().st_mode & 0o777, key.stat().st_mode & 0o777)
        if modes != (0o700, 0o600):
            raise SystemExit(f"the key's directory and file have modes {modes}, not 0700/0600")
        step("the signing key: /data/state/signoff-audit-key.pem, 0700/0600")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


EVALUATE = """
import sys, grpc
from signoff_client._gen import common_pb2, decision_pb2_grpc
target, token = sys.argv[1:]
req = common_pb2.ActionRequest(request_id="dockerfile-check")
req.action.name = "refund.issue"
req.action.params.update({"amount": 20, "currency": "EUR"})
with grpc.insecure_channel(target) as ch:
    d = decision_pb2_grpc.DecisionServiceStub(ch).Evaluate(
        req, metadata=[("authorization", "Bearer " + token)], timeout=10)
print(common_pb2.Outcome.Name(d.outcome))
"""


def evaluate(env: dict[str, str], token: str) -> None:
    """One Evaluate through the client installed in the image's virtualenv."""
    target = env["SIGNOFF_LISTEN"].replace("0.0.0.0", "127.0.0.1")
    out = subprocess.run(
        ["python", "-c", EVALUATE, target, token], env=env, capture_output=True, text=True
    )
    if out.returncode != 0 or out.stdout.strip() != "OUTCOME_AUTO_ALLOW":
        raise SystemExit(f"Evaluate: {out.stdout.strip()} {out.stderr.strip()}")
    step("Evaluate refund.issue 20 EUR: OUTCOME_AUTO_ALLOW")


def main() -> int:
    """Run the check in a fresh temporary directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="signoff-image-"))
    started = time.monotonic()
    try:
        check(root)
    except subprocess.CalledProcessError as exc:
        print(f"dockerfile: FAILED: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:
        print(f"dockerfile: FAILED: {exc.code}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            step(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    step(f"ok in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
