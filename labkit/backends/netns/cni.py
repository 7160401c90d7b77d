# Runs the real CNI plugins (/usr/lib/cni) the way a container runtime does: env + stdin.
"""The CNI specification's calling convention, for the replica's agent.

A runtime runs a plugin binary with ``CNI_COMMAND``, ``CNI_CONTAINERID``,
``CNI_NETNS``, ``CNI_IFNAME`` and ``CNI_PATH`` in its environment and the
network config on stdin; the plugin prints a result (or an error) as JSON on
stdout.  :func:`add` does exactly that inside a node's namespaces, so what the
plugin creates (bridge, veth, addresses, routes, host-local's files) is the
plugin's own work.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...model.errors import LabError

PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
"""Debian's containernetworking-plugins, then where kind's node image (and upstream) put them."""
PACKAGE = "containernetworking-plugins"


class PluginMissing(LabError):
    """A CNI plugin the lab must run is not installed here."""


class PluginFailed(LabError):
    """A CNI plugin exited with an error (its JSON error, or what it printed)."""


def plugin_dir(names: tuple[str, ...] = ("bridge", "host-local", "loopback", "portmap")) -> str:
    """The first plugin directory holding every one of ``names``; :class:`PluginMissing` if none."""
    for folder in PLUGIN_DIRS:
        if all(os.access(Path(folder) / n, os.X_OK) for n in names):
            return folder
    missing = [n for n in names if not any(os.access(Path(f) / n, os.X_OK) for f in PLUGIN_DIRS)]
    raise PluginMissing(
        f"the Flannel lab attaches its pods with the real CNI plugins, and "
        f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in "
        f"{' or '.join(PLUGIN_DIRS)}: install the Debian package {PACKAGE} "
        f"(sudo apt-get install -y {PACKAGE})"
    )


@dataclass(frozen=True)
class Call:
    """One plugin invocation: what went in and what came out."""

    plugin: str
    ifname: str
    config: dict[str, Any]
    result: dict[str, Any]

    def record(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "ifname": self.ifname, "config": self.config,
                "result": self.result}


Runner = Callable[[list[str], bytes], tuple[int, bytes, bytes]]
"""Runs argv with stdin in a node's namespaces and returns (exit code, stdout, stderr)."""


def add(run: Runner, folder: str, plugin: str, config: dict[str, Any], *, netns: str,
        ifname: str, container_id: str, args: str = "") -> Call:
    """``CNI_COMMAND=ADD`` for one plugin; its parsed result, or :class:`PluginFailed`.
    ``args`` is ``CNI_ARGS`` (``IgnoreUnknown=1;IP=10.244.1.3``), left unset if empty."""
    env = shutil.which("env", path="/usr/bin:/bin") or "/usr/bin/env"
    argv = [env, "CNI_COMMAND=ADD", f"CNI_CONTAINERID={container_id}", f"CNI_NETNS={netns}",
            f"CNI_IFNAME={ifname}", f"CNI_PATH={folder}", *([f"CNI_ARGS={args}"] if args else []),
            f"{folder}/{plugin}"]
    # As Go's encoding/json marshals the runtime's (and the flannel plugin's) maps: sorted.
    stdin = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    rc, out, err = run(argv, stdin)
    text = out.decode(errors="replace")
    try:
        result = json.loads(text) if text.strip() else {}
    except ValueError:
        result = {}
    if rc != 0 or not isinstance(result, dict) or "code" in result:
        detail = result.get("msg") if isinstance(result, dict) and result.get("msg") else \
            (text.strip() or err.decode(errors="replace").strip() or "no output")
        raise PluginFailed(f"CNI plugin {plugin} (ADD {ifname} in {netns}) exited with {rc}: "
                           f"{detail}")
    return Call(plugin, ifname, config, result)
