"""Rendering of results: terminal tables, HTML, JSON. Rendering never computes."""
