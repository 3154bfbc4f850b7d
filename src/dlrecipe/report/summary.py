"""RunSummary's old address: it moved to dlrecipe.summary (the core writes every run's summary).

python -c "from dlrecipe.report.summary import RunSummary; print(RunSummary.__module__)"
"""

from dlrecipe.summary import RunSummary

__all__ = ["RunSummary"]
