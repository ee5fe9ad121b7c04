"""nacos: compiler-in-the-loop co-search of neural architectures and TVM schedules.

The top of the house (see DESIGN.md): it composes `archspace/`, `schedules/` and `costmodels/` into
the searches users run. Importing it is cheap; torch, tvm and xgboost are imported where used.
"""

__version__ = "0.1.0"
