"""Keras 3 networks for flows: MADE and coupling conditioners."""

__all__ = []
