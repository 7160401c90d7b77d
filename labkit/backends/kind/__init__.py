# The kind lab: the seed's real cluster behind the same API (see backend.py).
"""The kind backend: kind + Calico + the seed's Deployment (the ``kind`` extra)."""

# The kind lab: kind + Calico v3.23.5 + the seed's Deployment, driven by the kind CLI,
# docker and the ``kubernetes`` client (the ``kind`` extra).
#
# Nothing here imports ``kubernetes`` at import time; :func:`labkit.open_lab`
# with ``"kind"`` imports :mod:`.backend`, whose functions import the client
# when they run.  The ``labkit`` command drives it: ``labkit pin``, ``labkit up --lab
# kind``, ``labkit status --lab kind`` (which says why it cannot run here, if it
# cannot), ``labkit down --lab kind``.
