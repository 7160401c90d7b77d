# The figures: what show() puts on a page besides terminals.
"""Parsers of ``ip -j`` and tcpdump, the models read from them, SVG, Markdown tables."""
