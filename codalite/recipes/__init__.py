"""Recipes: a grid of independent variables expanded into bundles; only what is missing runs."""

from .export import export_cl
from .plan import GridCell, Outcome, Submitted, cells, plan, submit, wait_all
from .record import record_on_worksheet
from .schema import Recipe, load

__all__ = ["GridCell", "Outcome", "Recipe", "Submitted", "cells", "export_cl", "load", "plan", "record_on_worksheet", "submit", "wait_all"]
