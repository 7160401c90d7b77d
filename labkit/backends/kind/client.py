# The Kubernetes API as the kind lab uses it: the client's import, its errors, the exec websocket.
"""It imports the ``kubernetes`` client when a kind lab starts (as :mod:`.readiness`
does), never at import time."""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from ...model.errors import LabUnavailable
from ..cluster.commands import FrameSource
from . import readiness
from .cluster import Progress


def client(module: str) -> Any:
    """A module of the kubernetes client, imported now (the client is only needed here)."""
    try:
        return importlib.import_module(f"kubernetes.{module}")
    except ImportError as exc:
        raise LabUnavailable(
            "the kind lab needs the `kubernetes` Python client, which is not installed",
            hint="pip install 'labkit[kind]' (or pip install kubernetes)") from exc


@contextlib.contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Turn the client's errors into one-line :class:`LabUnavailable` messages about ``what``."""
    ApiException = client("client.exceptions").ApiException
    DynamicApiError = client("dynamic.exceptions").DynamicApiError
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        raise LabUnavailable(f"{what}: the API server answered {exc.status} {exc.reason}"
                             f"{_status_message(exc.body)}") from exc
    except DynamicApiError as exc:
        raise LabUnavailable(f"{what}: the API server answered {exc.status} "
                             f"{exc.reason}{_status_message(exc.body)}") from exc
    except (HTTPError, OSError) as exc:
        raise LabUnavailable(f"{what}: cannot reach the cluster's API server ({exc})",
                             hint="is the cluster up? `labkit status --lab kind`") from exc


def _status_message(body: Any) -> str:
    try:
        message = yaml.safe_load(body).get("message") if body else None
    except (yaml.YAMLError, AttributeError):
        message = None
    return f": {message}" if message else ""


class _Websocket:
    """An exec websocket of the kubernetes client as a :class:`~.commands.FrameSource`."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.protocol = str(getattr(client, "subprotocol", "") or "")

    def recv(self) -> tuple[int, bytes]:
        opcode, frame = self._client.sock.recv_data_frame(True)
        return int(opcode), bytes(frame.data or b"")

    def abort(self) -> None:
        sock = self._client.sock
        if sock is not None:
            sock.abort()  # wakes a thread blocked in recv
            sock.shutdown()


class Api:
    """The parts of the Kubernetes API the kind lab uses, with JSON (dicts) in and out."""

    def __init__(self, kubeconfig: str) -> None:
        config, models = client("config"), client("client")
        try:
            self.client = config.new_client_from_config_dict(yaml.safe_load(kubeconfig))
        except (config.ConfigException, yaml.YAMLError, TypeError, ValueError) as exc:
            raise LabUnavailable(f"kind's kubeconfig for the cluster is not usable ({exc})",
                                 hint="`labkit down --lab kind` deletes the cluster; then "
                                      "start again") from exc
        self.core = models.CoreV1Api(self.client)
        self.apps = models.AppsV1Api(self.client)
        self.custom = models.CustomObjectsApi(self.client)
        # The client's stream() swaps the ApiClient's transport while it connects: one at a time.
        self._connecting = threading.Lock()

    def to_dict(self, obj: Any) -> dict[str, Any]:
        data: dict[str, Any] = self.client.sanitize_for_serialization(obj)
        return data

    def items(self, listing: Any) -> list[dict[str, Any]]:
        return list(self.to_dict(listing).get("items", []))

    def pod_exec(self, namespace: str, pod: str, container: str,
                 argv: list[str]) -> FrameSource:
        stream = client("stream").stream
        with self._connecting, api_errors(f"cannot exec in pod {namespace}/{pod}"):
            try:
                ws = stream(self.core.connect_get_namespaced_pod_exec, pod, namespace,
                            command=argv, container=container, stdin=False, stdout=True,
                            stderr=True, tty=False, _preload_content=False, binary=True)
            except Exception as exc:
                if type(exc).__name__ == "ApiException":
                    raise
                raise LabUnavailable(f"cannot exec in pod {namespace}/{pod}: {exc}") from exc
        return _Websocket(ws)

    def watch(self) -> Any:
        return client("watch").Watch()

    def wait(self, lister: Callable[..., Any], check: readiness.Check, *, what: str,
             timeout: float, progress: Progress,
             expect: Callable[[list[dict[str, Any]]], list[str]] | None = None,
             **kwargs: Any) -> list[dict[str, Any]]:
        with api_errors(f"while waiting for {what}"):
            return readiness.wait(lister, check, what=what, timeout=timeout,
                                  to_dict=self.to_dict, watch=self.watch, progress=progress,
                                  expect=expect, **kwargs)

    def apply(self, objects: list[dict[str, Any]], progress: Progress) -> None:
        """Server-side apply, so that applying again to a cluster that has them changes nothing."""
        with api_errors("cannot apply the manifests"):
            dynamic = client("dynamic").DynamicClient(self.client)
            for obj in objects:
                kind, name = obj["kind"], obj["metadata"]["name"]
                with api_errors(f"cannot apply {kind} {name}"):
                    resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=kind)
                    resource.server_side_apply(body=obj, field_manager="labkit",
                                               force_conflicts=True)
            progress(f"applied {len(objects)} objects")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
