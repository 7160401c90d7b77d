# `python -m labkit.kind`: pin the Calico manifest, and check, start, show or delete the cluster.
"""Command line for the kind lab's own chores, usable before `labkit` wires them in."""

from __future__ import annotations

import argparse
import sys

from ..errors import LabError
from . import backend, cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.kind", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    pin = verbs.add_parser("pin", help="download a file and record its sha256 in "
                                       "manifests/calico.yaml")
    pin.add_argument("what", nargs="?", default="manifest", choices=["manifest", "calicoctl"])
    pin.add_argument("--arch", default=None, help="calicoctl's architecture (amd64, arm64)")
    verbs.add_parser("check", help="say whether this machine can run the kind lab")
    verbs.add_parser("up", help="create (or reuse) the cluster and wait until it is ready")
    verbs.add_parser("status", help="show whether the cluster is up and ready")
    verbs.add_parser("down", help="delete the cluster")
    args = parser.parse_args(argv)
    try:
        if args.verb == "pin":
            digest = backend.pin(args.what, arch=args.arch)
            print(f"{digest}  recorded in manifests/calico.yaml; compare it with a second "
                  "source before committing it")
        elif args.verb == "check":
            reason = cluster.unavailable()
            print(reason or "the kind lab can run here")
            return 1 if reason else 0
        elif args.verb == "up":
            lab = backend.start()
            info = lab.inventory()["info"]
            lab.close()
            print(f"kind cluster {info['cluster']} is ready (Kubernetes {info['kubernetes']}, "
                  f"Calico {info['calico']}, {info['encapsulation']})")
        elif args.verb == "status":
            state = backend.status()
            print(state)
            return 0 if state.healthy else 1
        elif args.verb == "down":
            deleted = backend.delete()
            print("deleted" if deleted else "no kind cluster to delete")
    except LabError as exc:
        print(f"labkit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labkit: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
