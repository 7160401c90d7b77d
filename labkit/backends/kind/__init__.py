# The kind lab: a real cluster (kind, Calico or Flannel, the seed's Deployment) behind the same API.
"""The kind backend: kind + Calico or Flannel + the seed's Deployment (the ``kind`` extra)."""

# Driven by the kind CLI, docker and the ``kubernetes`` client (the ``kind`` extra): Calico
# v3.23.5 for the default lab (``manifests/``), Flannel v0.22.0 for ``manifests/flannel/``.
#
# Nothing here imports ``kubernetes`` at import time; :func:`labkit.open_lab`
# with ``"kind"`` imports :mod:`.backend`, whose functions import the client
# when they run.  The ``labkit`` command drives it: ``labkit pin``, ``labkit up --lab
# kind``, ``labkit status --lab kind`` (which says why it cannot run here, if it
# cannot), ``labkit down --lab kind``.
