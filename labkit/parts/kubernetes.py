# Kubernetes v1.23.4's missing file: zz_generated.openapi.go, generated as its Makefile did.
"""The prepare step of the Kubernetes recipe.

``pkg/generated/openapi/zz_generated.openapi.go`` is not in the v1.23.4 module (it was
first committed in 1.24), and kube-apiserver does not compile without it. Kubernetes'
``build/root/Makefile.generated_files`` made it with ``openapi-gen`` over every package
holding a ``+k8s:openapi-gen=`` tag, in the tree and its staging modules, except
code-generator's and sample-apiserver's. This does the same over the verified modules.

``go build -overlay`` cannot replace a file under GOMODCACHE, so the generated file goes
into a writable copy of the module, which the work copy of go.mod points at.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from .gobuild import GoWork, make_writable

MODULE = "k8s.io/kubernetes"
STAGING_VERSION = "v0.23.4"
"""The staging modules (k8s.io/api, k8s.io/client-go...) published with v1.23.4."""
NOT_GENERATED = ("k8s.io/code-generator", "k8s.io/sample-apiserver")
PACKAGE = "k8s.io/kubernetes/pkg/generated/openapi"
OPENAPI_GEN = "k8s.io/kube-openapi/cmd/openapi-gen"
# The Makefile finds tagged files with `grep -l '^// *+k8s:'`, then those with the openapi tag.
_ANY_TAG = re.compile(r"^// *\+k8s:", re.MULTILINE)
_OPENAPI_TAG = "+k8s:openapi-gen="


def generate_openapi(work: GoWork) -> None:
    """Generate the file and point the work copy of go.mod at a module copy that holds it."""
    # Named as upstream's, since the file's header says which program generated it.
    tool = work.dir / ".tools" / "openapi-gen"
    work.go_run("build", "-o", tool, OPENAPI_GEN)
    modules = work.modules()
    kubernetes = modules[MODULE][1]
    if kubernetes is None:
        raise FileNotFoundError(f"{MODULE} was not downloaded")
    roots = [(MODULE, kubernetes)] + [
        (path, folder) for path, (version, folder) in sorted(modules.items())
        if path.startswith("k8s.io/") and version == STAGING_VERSION
        and path not in NOT_GENERATED and folder is not None]
    packages = sorted(package for root in roots for package in tagged_packages(*root))
    work.log.write(f"# openapi-gen over {len(packages)} packages of {len(roots)} modules")
    generated = work.dir / ".openapi"
    work.log.run([tool, "-i", ",".join(packages), "-p", PACKAGE, "-O", "zz_generated.openapi",
                  "-o", generated,
                  "-h", kubernetes / "hack" / "boilerplate" / "boilerplate.generatego.txt",
                  "-r", work.dir / ".openapi-violations.report"],
                 cwd=work.dir, env=work.env)
    copy = work.dir / "kubernetes"
    shutil.copytree(kubernetes, copy, symlinks=True)
    make_writable(copy)
    target = copy / "pkg" / "generated" / "openapi" / "zz_generated.openapi.go"
    shutil.copyfile(generated / PACKAGE / "zz_generated.openapi.go", target)
    work.go_run("mod", "edit", f"-replace={MODULE}=./kubernetes")


def tagged_packages(module: str, folder: Path) -> Iterator[str]:
    """The import paths of ``module``'s packages (in ``folder``) that a non-test Go file
    tags ``+k8s:openapi-gen=``; like the Makefile, folders named ``vendor``, ``_*`` or
    ``.*`` are skipped."""
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "vendor" and not d.startswith(("_", ".")))
        for name in sorted(files):
            if not name.endswith(".go") or name.endswith("_test.go"):
                continue
            text = Path(here, name).read_text(encoding="utf-8", errors="replace")
            if _OPENAPI_TAG in text and _ANY_TAG.search(text):
                relative = Path(here).relative_to(folder).as_posix()
                yield module if relative == "." else f"{module}/{relative}"
                break
