"""Rendering: terminal tables, JSON, the HTML report, plots, Model Explorer node data.
Rendering never computes.

May import: ``results``, ``files`` and ``errors`` only.
"""
