"""Tasks: one object per kind of target, found by name (see tasks/base.py for the seam).

    python -c "from dlrecipe.tasks import task_named, direction; print(task_named('multiclass', 3).num_outputs, direction('val/acc'))"

Importing this package stays light (no torch): the built-in task classes load on first use.
"""

from typing import Any

from dlrecipe.tasks.base import (
    DIRECTIONS,
    REGISTRY,
    Task,
    as_task,
    direction,
    metric_names,
    register_task,
    task_named,
    task_names,
)

__all__ = [
    "DIRECTIONS", "REGISTRY", "Binary", "Multiclass", "Regression", "Task", "as_task",
    "direction", "metric_names", "register_task", "task_named", "task_names",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in ("Binary", "Multiclass", "Regression"):
        from dlrecipe.tasks import builtin

        return getattr(builtin, name)
    raise AttributeError(f"module 'dlrecipe.tasks' has no attribute {name!r}")
