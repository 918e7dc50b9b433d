"""Recipes: a grid of independent variables expanded into bundles; only what is missing runs."""

from .export import export_cl
from .plan import cells, plan, submit, wait_all
from .schema import Recipe, load

__all__ = ["Recipe", "cells", "export_cl", "load", "plan", "submit", "wait_all"]
