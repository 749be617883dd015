"""Segmenting one video: automatic (every moving object) or prompted (clicks and boxes)."""
