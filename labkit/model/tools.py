# The commands readers and labkit run, the Debian/Ubuntu package of each, and how they print.
"""One table of tools and packages, for every message that says what to install."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess

PACKAGES = {
    "ip": "iproute2", "bridge": "iproute2", "ping": "iputils-ping", "arping": "iputils-arping",
    "tcpdump": "tcpdump", "sysctl": "procps", "ps": "procps", "ifconfig": "net-tools",
    "route": "net-tools", "arp": "net-tools", "netstat": "net-tools", "curl": "curl",
    "newuidmap": "uidmap", "bird": "bird", "birdc": "bird", "catatonit": "catatonit",
}
"""Each tool's Debian/Ubuntu package."""

# A reader's Ctrl-C reaches the whole process group: the shell running the command and the
# command. A terminal shows the command's exit status (tcpdump, which catches SIGINT and
# prints its counters, 0; sleep, killed by it, 130); without a trap, dash waiting for the
# command dies of the signal itself (130 whatever the command did), and whether it got to
# exec the command first is a race. The trap makes the shell exit with the command's status.
CTRL_C = "trap 'exit $?' INT\n"

# Programs buffer stdout fully when it is not a terminal; coreutils' stdbuf preload makes it
# line-buffered, as on the terminal of the seed's screenshots (tcpdump prints each packet).
STDBUF = "/usr/libexec/coreutils/libstdbuf.so"


# What prints the outputs: the build machine's own tools (a kind node image ships others).
VERSIONS = {
    "iproute2": (["ip", "-V"], r"iproute2-(?:ss)?([\w.]+)"),
    "iputils": (["ping", "-V"], r"iputils[ -]s?([\w.]+)"),
    "tcpdump": (["tcpdump", "--version"], r"tcpdump version ([\w.]+)"),
}
# What runs a real cluster's containers (the native lab's nodes run Debian's).
RUNTIME_VERSIONS = {
    "containerd": (["containerd", "--version"], r"containerd \S+ v?([\w.]+)"),
    "runc": (["runc", "--version"], r"runc version v?([\w.]+)"),
}


def tool_versions() -> dict[str, str]:
    """The versions of the tools that print what the pages show: package -> version."""
    return _versions("tools")


def runtime_versions() -> dict[str, str]:
    """containerd's and runc's versions, as the build machine has them."""
    return _versions("runtime")


@functools.cache
def _versions(which: str) -> dict[str, str]:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    found = {}
    table = VERSIONS if which == "tools" else RUNTIME_VERSIONS
    for package, (argv, pattern) in table.items():
        tool = shutil.which(argv[0], path=path)
        if tool is None:
            continue
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run([tool, *argv[1:]], capture_output=True, text=True, timeout=10)
            match = re.search(pattern, done.stdout + done.stderr)
            if match:
                found[package] = match.group(1)
    return found
