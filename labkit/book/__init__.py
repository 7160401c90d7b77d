# The book pipeline: docs_src/*.md in, plain Markdown pages out.
"""Snippets, running them, pages, transcripts, normalisers, drift, cache, build."""
