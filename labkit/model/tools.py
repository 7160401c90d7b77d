# The commands readers and labkit run, the Debian/Ubuntu package of each, and how they print.
"""One table of tools and packages, for every message that says what to install."""

from __future__ import annotations

PACKAGES = {
    "ip": "iproute2", "bridge": "iproute2", "ping": "iputils-ping", "arping": "iputils-arping",
    "tcpdump": "tcpdump", "sysctl": "procps", "ps": "procps", "ifconfig": "net-tools",
    "route": "net-tools", "arp": "net-tools", "netstat": "net-tools", "curl": "curl",
    "newuidmap": "uidmap", "bird": "bird", "birdc": "bird", "catatonit": "catatonit",
}
"""Each tool's Debian/Ubuntu package."""

# Programs buffer stdout fully when it is not a terminal; coreutils' stdbuf preload makes it
# line-buffered, as on the terminal of the seed's screenshots (tcpdump prints each packet).
STDBUF = "/usr/libexec/coreutils/libstdbuf.so"
