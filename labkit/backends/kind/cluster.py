# The kind CLI and docker, as the kind lab drives them: preflight, create, delete, node shells.
"""Everything the kind lab does through ``kind`` and ``docker`` on this machine.

Each failure a reader can meet (no ``docker``, no daemon, no ``kind``, a
``kind create`` that fails) is a :class:`~labkit.model.errors.LabUnavailable` whose
message says what to do; subprocess errors never escape raw.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from ...model.errors import LabUnavailable, ToolMissing
from ...model.tools import PACKAGES

Progress = Callable[[str], None]

DOCKER_HINT = ("install Docker Engine (https://docs.docker.com/engine/install/, or the Debian "
               "package docker.io), or build with the netns lab (the default)")
KIND_HINT = ("install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation, e.g. "
             "`go install sigs.k8s.io/kind@latest`), or build with the netns lab (the default)")
# The tools the seed's setup script gives every node (ping copied in, net-tools and tcpdump from
# apt), plus procps for sysctl; checked by command, installed only where missing.
NODE_TOOLS = {tool: PACKAGES[tool] for tool in ("ping", "tcpdump", "ifconfig", "sysctl")}
# kindest/node:v1.23.4 is Ubuntu 21.10, whose packages have moved to old-releases (the seed's
# sed does the same); only used when apt-get update fails against the image's own sources.
OLD_RELEASES = (r"s#http://\([a-z]*\.\)\?\(archive\|security\)\.ubuntu\.com/ubuntu"
                r"#http://old-releases.ubuntu.com/ubuntu#g; "
                r"s#http://ports\.ubuntu\.com/ubuntu-ports#http://old-releases.ubuntu.com/ubuntu#g")


class HostToolMissing(ToolMissing):
    """``docker`` or ``kind`` is not on this machine's PATH."""

    def __init__(self, tool: str, hint: str) -> None:
        self.tool = tool
        self.package = None
        LabUnavailable.__init__(self, f"`{tool}` not found on PATH; the kind lab needs it",
                                hint=hint)


def which(tool: str) -> str | None:
    return shutil.which(tool, path=os.environ.get("PATH", os.defpath))


def _run(argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              errors="replace", stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        tool = Path(argv[0]).name
        raise HostToolMissing(tool, KIND_HINT if tool == "kind" else DOCKER_HINT) from exc
    except subprocess.TimeoutExpired as exc:
        raise LabUnavailable(f"`{' '.join(argv[:3])}` did not answer within {timeout:g}s",
                             hint="is the Docker daemon overloaded or stuck?") from exc


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "(no message)")


def docker_daemon_problem() -> str | None:
    """Why no Docker daemon answers (the client's own words), or ``None`` if one does."""
    done = _run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=20)
    if done.returncode == 0 and done.stdout.strip():
        return None
    return _first_line(done.stderr or done.stdout)


def unavailable() -> str | None:
    """Why the kind lab cannot run here, in one line (for a test's skip), or ``None``."""
    if which("docker") is None:
        return "`docker` not found on PATH"
    problem = docker_daemon_problem()
    if problem is not None:
        return f"no Docker daemon ({problem})"
    if which("kind") is None:
        return "`kind` not found on PATH"
    return None


def preflight() -> None:
    """Raise the first reason the kind lab cannot run here, with what to do about it."""
    if which("docker") is None:
        raise HostToolMissing("docker", DOCKER_HINT)
    problem = docker_daemon_problem()
    if problem is not None:
        hint = ("add yourself to the `docker` group (then log in again), or run as root"
                if "permission denied" in problem.lower() else
                "start it (`sudo systemctl start docker`, or open Docker Desktop), "
                "or build with the netns lab (the default)")
        raise LabUnavailable(f"no Docker daemon answers: {problem}", hint=hint)
    if which("kind") is None:
        raise HostToolMissing("kind", KIND_HINT)


def kind_version() -> str:
    done = _run(["kind", "version"])
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def clusters() -> list[str]:
    """The kind clusters that exist on this Docker daemon."""
    done = _run(["kind", "get", "clusters"])
    if done.returncode != 0:
        raise LabUnavailable(f"`kind get clusters` failed: {_first_line(done.stderr)}",
                             hint="check that the Docker daemon is up (`docker info`)")
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def nodes(name: str) -> list[str]:
    """The node containers of cluster ``name``."""
    done = _run(["kind", "get", "nodes", "--name", name])
    if done.returncode != 0:
        raise LabUnavailable(f"`kind get nodes --name {name}` failed: "
                             f"{_first_line(done.stderr)}")
    return sorted(line.strip() for line in done.stdout.splitlines() if line.strip())


def kubeconfig(name: str) -> str:
    """The cluster's kubeconfig (API server on 127.0.0.1), without touching ~/.kube/config."""
    done = _run(["kind", "get", "kubeconfig", "--name", name])
    if done.returncode != 0:
        raise LabUnavailable(f"cannot get the kubeconfig of kind cluster {name!r}: "
                             f"{_first_line(done.stderr)}",
                             hint="delete it (`labkit down --lab kind`) and start again")
    return done.stdout


def kubeconfig_path(name: str) -> Path:
    """Where kind writes the cluster's kubeconfig for labkit: not ~/.kube/config.

    The seed lets kind merge the cluster into ~/.kube/config and switch the
    current context; labkit does not change the user's kubectl setup behind
    their back (``kind export kubeconfig --name <cluster>`` does that on request).
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "labkit" / "kind" / f"{name}.kubeconfig"


def create_argv(name: str, config: Path) -> list[str]:
    """``kind create cluster`` as the seed runs it, with the config from manifests/.

    The node image is in the config (per node), so no ``--image``; no ``--wait``,
    because without a CNI the control-plane never becomes Ready until Calico is in.
    """
    return ["kind", "create", "cluster", "--name", name, "--config", str(config),
            "--kubeconfig", str(kubeconfig_path(name))]


def create(name: str, config: Path, progress: Progress) -> None:
    """Create the cluster, passing kind's own progress lines on; clean up if it fails."""
    argv = create_argv(name, config)
    kubeconfig_path(name).parent.mkdir(parents=True, exist_ok=True)
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace")
    except FileNotFoundError as exc:
        raise HostToolMissing("kind", KIND_HINT) from exc
    assert process.stdout is not None
    lines = []
    try:
        for line in process.stdout:
            line = line.rstrip()
            if line:
                lines.append(line)
                progress(f"kind: {line.strip()}")
    except BaseException:
        # Ctrl-C: stop kind too; what it made so far may stay, and the caller says how to go.
        process.terminate()
        process.wait()
        raise
    if process.wait() != 0:
        detail = next((x for x in reversed(lines) if "ERROR" in x), lines[-1] if lines else "")
        # kind removes the containers of a cluster it failed to create; make sure of it.
        if name in existing_clusters():
            delete(name)
        raise LabUnavailable(
            f"`kind create cluster --name {name}` failed: {detail.strip() or 'no output'}",
            hint="read kind's output above; common causes: the node image cannot be pulled "
                 "(network), or too little memory or too few inotify watches for three nodes",
        )


def existing_clusters() -> list[str]:
    """:func:`clusters`, or none when kind cannot tell (for clean-up decisions only)."""
    try:
        return clusters()
    except LabUnavailable:
        return []


def delete(name: str) -> None:
    done = _run(["kind", "delete", "cluster", "--name", name,
                 "--kubeconfig", str(kubeconfig_path(name))], timeout=300)
    if done.returncode != 0:
        raise LabUnavailable(f"`kind delete cluster --name {name}` failed: "
                             f"{_first_line(done.stderr)}",
                             hint=f"remove its containers by hand: docker rm -f $(kind get "
                                  f"nodes --name {name})")


def docker_exec_argv(container: str, argv: Sequence[str]) -> list[str]:
    """``docker exec`` without a TTY, as root, in the node's ``/``: a reader's node shell."""
    return ["docker", "exec", "--workdir", "/", container, *argv]


def node_sh(container: str, script: str, timeout: float = 120.0) -> tuple[int, str, str]:
    """Run a setup script in a node (not a reader's command: those go through the backend)."""
    done = _run(docker_exec_argv(container, ["/bin/sh", "-c", script]), timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def copy_to_node(container: str, source: Path, destination: str) -> None:
    done = _run(["docker", "cp", str(source), f"{container}:{destination}"])
    if done.returncode != 0:
        raise LabUnavailable(f"`docker cp` into {container} failed: {_first_line(done.stderr)}")


def node_architecture(container: str) -> str:
    """``amd64`` or ``arm64``: which calicoctl binary the node can run."""
    code, out, _ = node_sh(container, "uname -m", timeout=30)
    machine = out.strip() if code == 0 else ""
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def tools_script(tools: dict[str, str] = NODE_TOOLS) -> str:
    """A script that installs, with apt, the packages of the tools a node lacks."""
    checks = "\n".join(
        f'command -v {tool} >/dev/null 2>&1 || missing="$missing {package}"'
        for tool, package in tools.items()
    )
    return f"""missing=""
{checks}
[ -z "$missing" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
if ! apt-get -qq update >/dev/null 2>&1; then
  sed -i -e '{OLD_RELEASES}' /etc/apt/sources.list
  apt-get -qq update >/dev/null || exit 100
fi
apt-get -qq install -y --no-install-recommends $missing >/dev/null || exit 101
"""


def install_tools(container: str) -> str | None:
    """Give a node the seed's tools; return what went wrong, or ``None``."""
    code, _, err = node_sh(container, tools_script(), timeout=600)
    if code == 0:
        return None
    return f"apt-get failed on {container} ({_first_line(err)})"
