"""Figures: each declared once in its task's folder (``<task package>/figures.py``) and drawn from the stores.

- :mod:`~headshare.figures.spec`: what a figure declares (store, how it covers every grid axis, caption,
  draw function) and the files it writes; cheap to import, read by the rule files at parse time.
- :mod:`~headshare.figures.registry`: every task's figures, found through the task registry.
- :mod:`~headshare.figures.render`: one file per page, titled with the values it holds fixed.
- :mod:`~headshare.figures.canvas` and :mod:`~headshare.figures.heads`: shared drawing helpers.
"""

from headshare.figures.registry import all_figures, figures_of, get, task_figures
from headshare.figures.spec import FigureSpec, Page, format_value

__all__ = ["FigureSpec", "Page", "all_figures", "figures_of", "format_value", "get", "task_figures"]
