# The process that owns a netns lab: it holds every namespace and runs commands in them.
"""The lab's agent.

Started by :mod:`.launcher` with ``python -m labkit.backends.netns.agent``.  It moves
into a new user namespace (the launcher writes its id maps), then into new
network, mount, UTS and PID namespaces, and forks the lab's PID 1.  PID 1
builds the replica (one holder per node and per pod, each with its own network,
UTS, mount and PID namespace and root filesystem: :mod:`.holder`) and then
serves requests on a unix socket until it is told to stop or, unless detached,
until the process that started it goes away.  Because every process of the lab
lives in that PID namespace or below it, the kernel kills all of them, and frees
every namespace, the moment PID 1 exits, however it exits.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import sys
import traceback
from typing import Any

from ...model.topology import from_json
from . import linux
from .replica import MOUNT_FLAGS, NS_FLAGS, Replica, choose_encapsulation
from .server import Server
from .spawn import MachineLacks


def become_lab_init(config: dict[str, Any], handshake: Any) -> int:
    """Runs as PID 1 of the lab's PID namespace; returns the exit status."""
    linux.die_with_parent(signal.SIGKILL)
    linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount("proc", "/proc", "proc", MOUNT_FLAGS)
    # A private /run: the lab's /run/netns must not be, or touch, the host's.
    linux.mount("tmpfs", "/run", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=755")
    os.mkdir("/run/netns")
    linux.sethostname("labkit-" + config["name"])
    topo = from_json(config["topology"])  # the launcher has read and checked the manifests
    listener = socket.socket(fileno=config["listen_fd"])
    listener.set_inheritable(False)  # commands (and holders) must not hold it open
    note = ""
    encapsulation = config.get("encapsulation")
    if not encapsulation:
        encapsulation, note = choose_encapsulation(topo, config["manifests"])
    lab = Replica(topo, encapsulation, config["mapping"], bird=config.get("bird", True), note=note)
    # Building makes a few objects per pod and frees none: the collector's passes over
    # them all, again and again as they grow, were time spent for nothing.
    gc.disable()
    lab.build()
    gc.freeze()
    gc.enable()
    lab.start_bird()
    handshake.write("ready " + json.dumps(lab.inventory()) + "\n")
    handshake.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    parent = None if config.get("detached") else 0
    Server(lab, listener, parent).serve()
    return 0


def main() -> int:
    handshake = sys.stdout
    config = json.loads(sys.stdin.readline())
    try:
        linux.unshare(linux.CLONE_NEWUSER)
    except OSError as exc:
        handshake.write(f"error user namespaces are not available: {exc.strerror}\n")
        return 1
    handshake.write("userns\n")
    handshake.flush()
    answer = sys.stdin.readline().strip()
    if not answer.startswith("mapped"):
        return 1
    config["mapping"] = answer.split()[1]
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        if config["mapping"] != "single":
            os.setgroups([])
        linux.unshare(NS_FLAGS | linux.CLONE_NEWPID)
    except OSError as exc:
        handshake.write(f"error cannot create the lab's namespaces: {exc}\n")
        return 1
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = become_lab_init(config, handshake)
        except BaseException as exc:
            detail = "".join(traceback.format_exception_only(exc)).strip()
            sys.stderr.write(traceback.format_exc())
            # A machine without what the lab needs skips; a lab that fails to build is a bug.
            lacks = isinstance(exc, MachineLacks) or type(exc).__name__ == "PluginMissing"
            try:
                handshake.write(f"{'unavailable' if lacks else 'error'} {detail}\n")
                handshake.flush()
            except OSError:
                pass
        os._exit(code)
    # This process stays outside the lab's PID namespace only to wait for its PID 1.
    sys.stdin.close()
    os.close(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
