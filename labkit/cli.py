# The `labkit` command: keep a lab up between commands, run commands in it, build the site.
"""Command-line interface.

::

    labkit up [LAB]                   start a netns lab in the background, print it
    labkit status [LAB] [--json]      what is up: lab, backend, CNI, encapsulation, nodes, pods
    labkit sh [LAB] TARGET -- CMD...  run CMD in a node or pod, exit with its status
    labkit down [LAB]                 stop it
    labkit kubeconfig [LAB] [--lab native|kind]   the kubeconfig kind would write, for kubectl
                                      on this machine (API server on 127.0.0.1)

LAB is a lab's name (``calico``, the default, or a folder of ``manifests/`` such as
``flannel``); ``--lab netns|kind|native`` picks the backend that runs it.
    labkit build [--lab L] [--replay] [--keep-going] [--fresh] [--jobs N]
                                      run the chapters and build site/ with mkdocs
    labkit check [--lab L]            run every snippet live, diff against transcripts
    labkit fidelity [--real recorded] [--replica recorded] [CHAPTER...]
                                      the replica's outputs against the real cluster's
    labkit pin [manifest|calicoctl|flannel]   kind lab: record the sha256 of what it downloads
    labkit parts build|list|check|path [NAME...]   the real cluster's software, built and cached

Errors print one line (``labkit: ...``) and exit 1; bad arguments print usage and exit 2, and
so does a ``--site`` folder that labkit did not build (it is left as it was).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence

from .model import labs
from .model.errors import LabError, LabUnavailable, RefusedFolder
from .model.version import __version__

LABS = ("netns", "kind", "native")


class _Command(argparse.ArgumentParser):
    """A subcommand's parser: an argument it does not know is its error, shown with its usage.

    (argparse hands a subcommand's unknown arguments back to the top-level parser, which
    prints ``usage: labkit COMMAND ...``: no help to someone who mistyped ``labkit up``.)
    """

    def parse_known_args(  # type: ignore[override]
            self, args: Sequence[str] | None = None,
            namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def _lab_name(name: str) -> str:
    """A lab's name, checked against the manifests (argparse shows the error with the usage)."""
    try:
        labs.manifests(name)
    except labs.UnknownLab as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labkit",
        description="Run a lab book's snippets against a real kind + Calico cluster or its "
                    "netns replica.",
    )
    parser.add_argument("--version", action="version", version=f"labkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Command)

    lab_help = "the lab's name: calico (the default) or a folder of manifests/, e.g. flannel"
    up = sub.add_parser("up", help="start a lab that stays up between commands")
    up.add_argument("cluster", nargs="?", default=None, metavar="LAB", help=lab_help,
                    type=_lab_name)
    up.add_argument("--lab", choices=LABS, default="netns", help="the backend")
    up.add_argument("--name", default=None,
                    help="several copies of a lab can be up at once under different names "
                         "(default: the lab's name)")

    status = sub.add_parser("status", help="show the lab that is up")
    status.add_argument("cluster", nargs="?", default=None, metavar="LAB", help=lab_help,
                        type=_lab_name)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.add_argument("--lab", choices=LABS, default="netns", help="the backend")
    status.add_argument("--name", default=None)

    sh = sub.add_parser("sh", help="run a command in a node or a pod of the lab that is up",
                        usage="labkit sh [--lab L] [--timeout S] [LAB] TARGET -- CMD...")
    sh.add_argument("--lab", choices=LABS, default="netns", help="the backend")
    sh.add_argument("target", help="a node name (calico-ipip-worker2) or a pod name, "
                                   "after the lab's name if you give it")
    sh.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    sh.add_argument("--timeout", type=float, default=60.0)
    sh.add_argument("--keep", type=int, default=None, metavar="BYTES",
                    help="keep at most this much of each of stdout and stderr "
                         "(default 16 MiB); the rest is counted, not printed")
    sh.add_argument("--name", default=None)
    sh.set_defaults(usage_error=sh.error)

    down = sub.add_parser("down", help="stop the lab that is up")
    down.add_argument("cluster", nargs="?", default=None, metavar="LAB", help=lab_help,
                      type=_lab_name)
    down.add_argument("--lab", choices=LABS, default="netns", help="the backend")
    down.add_argument("--name", default=None)

    kubeconfig = sub.add_parser(
        "kubeconfig", help="print the kubeconfig of a native or kind lab that is up, as `kind "
                           "get kubeconfig` does: context kind-<cluster>, the API server on "
                           "127.0.0.1")
    kubeconfig.add_argument("cluster", nargs="?", default=None, metavar="LAB", help=lab_help,
                            type=_lab_name)
    kubeconfig.add_argument("--lab", choices=("native", "kind"), default="native",
                            help="the backend (default native; the netns replica has no API "
                                 "server)")
    kubeconfig.add_argument("--name", default=None)

    build = sub.add_parser("build", help="run the chapters and build the site with mkdocs")
    _build_options(build)
    build.add_argument("--site", default="site", help="where the site goes (default: site/)")
    build.add_argument("--serve", action="store_true", help="serve with live reload instead")

    check = sub.add_parser("check", help="run every snippet live and diff against transcripts")
    check.add_argument("--lab", choices=LABS, default="netns")

    fidelity = sub.add_parser("fidelity", help="run the chapters on the replica and on the "
                                               "native real cluster, compare every output")
    for side, lab in (("real", "the native real cluster (as root)"), ("replica", "the replica")):
        fidelity.add_argument(f"--{side}", choices=["live", "recorded"], default="live",
                              help=f"run them on {lab} (live, the default) or take its "
                                   "committed transcripts (recorded)")
    fidelity.add_argument("chapters", nargs="*", metavar="CHAPTER",
                          help="chapters by file name (03-datapath); default: all")

    pin = sub.add_parser("pin", help="kind lab: download and record the sha256 of Calico's "
                                     "manifest (or calicoctl) in the lab's calico.yaml, or of "
                                     "kube-flannel.yml (flannel) in its flannel.yaml (under "
                                     "manifests/, or LABKIT_MANIFESTS)")
    pin.add_argument("what", choices=["manifest", "calicoctl", "flannel"], nargs="?",
                     default="manifest")
    pin.add_argument("--arch", default=None, help="calicoctl's architecture (default amd64)")
    _parts_parser(sub)
    return parser


def _parts_parser(sub: argparse._SubParsersAction[_Command]) -> None:
    parts = sub.add_parser("parts", help="the real cluster's software (Kubernetes, pause, "
                                         "Debian's containerd...): build, list, check")
    actions = parts.add_subparsers(dest="action", required=True, metavar="ACTION",
                                   parser_class=_Command)
    names = "parts to act on (default: all of them)"
    build = actions.add_parser("build", help="build the parts that are missing or damaged")
    build.add_argument("names", nargs="*", metavar="NAME", help=names)
    listing = actions.add_parser("list", help="each part: version, source, path, sha256s")
    listing.add_argument("names", nargs="*", metavar="NAME", help=names)
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    check = actions.add_parser("check", help="re-hash every cached file against part.json")
    check.add_argument("names", nargs="*", metavar="NAME", help=names)
    path = actions.add_parser("path", help="print the folder of a built part")
    path.add_argument("name", metavar="NAME")


def _build_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lab", choices=LABS, default="netns", help="the lab to run snippets on")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--replay", action="store_true",
                     help="start no lab: build from the transcripts in docs_src/transcripts/")
    how.add_argument("--fresh", action="store_true",
                     help="run every chapter live, even those recorded unchanged")
    parser.add_argument("--keep-going", action="store_true",
                        help="show a failing snippet as an error box on its page and go on")
    parser.add_argument("--jobs", type=_jobs, default=0, metavar="N",
                        help="run at most N chapters at once (default 0: all of them; "
                             "the kind lab runs one at a time)")


def _jobs(value: str) -> int:
    try:
        jobs = int(value)
    except ValueError:
        jobs = -1
    if jobs < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of chapters (0: all)")
    return jobs


def _cluster(args: argparse.Namespace) -> str:
    return args.cluster or labs.DEFAULT


def _instance(args: argparse.Namespace, target: str | None = None) -> str:
    """Which detached netns lab a command means: ``--name``, else the lab's name, else the one
    lab that is up (the one that has ``target``, for ``labkit sh``), else the default."""
    if args.name:
        return str(args.name)
    if args.cluster:
        return str(args.cluster)
    from .backends.netns import launcher

    up = launcher.labs_up()
    if target is not None:
        having = [name for name, inventory in up.items()
                  if any(t["name"] == target for t in (*inventory.get("nodes", ()),
                                                        *inventory.get("pods", ())))]
        if len(having) == 1:
            return having[0]
    if labs.DEFAULT not in up and len(up) == 1:
        return next(iter(up))
    return labs.DEFAULT


def _up(args: argparse.Namespace) -> int:
    from .figures.status import status_text

    manifests = labs.manifests(_cluster(args))
    if args.lab == "kind":
        from .backends.kind import backend as kind_backend

        cluster = kind_backend.start(manifests)
        print(status_text(cluster.inventory()), end="")
        cluster.close()
        return 0
    if args.lab == "native":
        from .backends.native import backend as native_backend

        lab = native_backend.start(manifests, name=args.name, detached=True)
        print(status_text(lab.inventory()), end="")
        lab.close()  # detached: the lab stays up
        return 0
    from .backends.netns import launcher

    backend = launcher.start(manifests, name=args.name or _cluster(args), detached=True)
    print(status_text(backend.inventory()), end="")
    return 0


def _status(args: argparse.Namespace) -> int:
    from .figures.status import status_document, status_text

    if args.lab == "kind":
        from .backends.kind import backend as kind_backend

        inventory = kind_backend.start(labs.manifests(_cluster(args)),
                                       reuse_only=True).inventory()
    elif args.lab == "native":
        from .backends.native import backend as native_backend

        inventory = native_backend.start(labs.manifests(_cluster(args)), name=args.name,
                                         reuse_only=True).inventory()
    else:
        from .backends.netns import launcher

        inventory = launcher.attach(_instance(args)).current()
    if args.json:
        print(json.dumps(status_document(inventory), indent=2, ensure_ascii=False))
    else:
        print(status_text(inventory), end="")
    return 1 if inventory.get("damaged") else 0  # a damaged lab is not a lab to build on


def _sh(args: argparse.Namespace) -> int:
    args.cluster = None
    if args.cmd[:1] != ["--"] and args.cmd[1:2] == ["--"] and args.target in labs.names():
        # `labkit sh flannel flannel-worker -- ip route`: the lab's name came first.
        args.cluster, args.target, args.cmd = args.target, args.cmd[0], args.cmd[1:]
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        args.usage_error("give the command after --, e.g. labkit sh NODE -- ip route")
    from .api.lab import Lab

    if args.lab == "kind":
        from .backends.kind import backend as kind_backend

        lab = Lab(kind_backend.start(labs.manifests(_cluster(args)), reuse_only=True))
    elif args.lab == "native":
        from .backends.native import backend as native_backend

        lab = Lab(native_backend.start(labs.manifests(_cluster(args)), name=args.name,
                                       reuse_only=True))
    else:
        from .backends.netns import launcher

        lab = Lab(launcher.attach(_instance(args, args.target)))
    command = cmd[0] if len(cmd) == 1 else shlex.join(cmd)
    more = {"keep": args.keep} if args.keep is not None else {}
    try:
        result = lab.sh(args.target, command, timeout=args.timeout, check=False, **more)
    except ValueError as exc:  # a --keep out of range
        args.usage_error(str(exc))
    finally:
        if args.lab in ("kind", "native"):
            lab.close()  # releases the connection; the cluster stays up
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    for stream, lost in result.dropped.items():
        print(f"labkit: {args.target}: printed only the first {lost['kept']} bytes of the "
              f"command's {stream}; {lost['dropped']} more were not kept (--keep BYTES)",
              file=sys.stderr)
    return result.rc


def _down(args: argparse.Namespace) -> int:
    if args.lab == "kind":
        from .backends.kind import manage

        deleted = manage.delete(manifests=labs.manifests(_cluster(args)))
        print("kind cluster deleted" if deleted else "no kind cluster to delete")
        return 0
    if args.lab == "native":
        from .backends.cluster.settings import load
        from .backends.native import backend as native_backend

        # `labkit down flannel --lab native` removes that lab only (the Calico one may be up
        # beside it); with no lab named, every native lab.
        instance = args.name or (load(labs.manifests(args.cluster)).cluster if args.cluster
                                 else None)
        print(native_backend.down(instance))
        return 0
    from .backends.netns import launcher

    print(launcher.down(_instance(args)))
    return 0


def _kubeconfig(args: argparse.Namespace) -> int:
    manifests = labs.manifests(_cluster(args))
    if args.lab == "kind":
        from .backends.cluster.settings import load
        from .backends.kind import cluster

        sys.stdout.write(cluster.kubeconfig(args.name or load(manifests).cluster))
        return 0
    from .backends.native import backend as native_backend

    sys.stdout.write(native_backend.kubeconfig(manifests, name=args.name))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return _up(args)
        if args.command == "status":
            return _status(args)
        if args.command == "sh":
            return _sh(args)
        if args.command == "down":
            return _down(args)
        if args.command == "kubeconfig":
            return _kubeconfig(args)
        if args.command == "parts":
            from .parts import commands as parts

            return parts.run(args)
        if args.command == "pin":
            from .backends.kind import manage

            print(manage.pin(args.what, arch=args.arch))
            return 0
        # Each command imports what it needs, here and above: `labkit build` is run after
        # every edit, and what it imports for nothing is paid on every rebuild.
        if args.command == "build":
            from .integrations import site

            return site.build_site(args)
        if args.command == "fidelity":
            from .integrations import fidelity

            return fidelity.run(args)
        from .integrations import check

        return check.check(args)
    except LabUnavailable as exc:
        print(f"labkit: {exc.one_line()}", file=sys.stderr)
        return 1
    except RefusedFolder as exc:
        print(f"labkit: {exc}", file=sys.stderr)
        return 2
    except LabError as exc:
        print(f"labkit: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("labkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
