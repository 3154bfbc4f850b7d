"""Tasks: one object per kind of target, found by name (see tasks/base.py for the seam).

    python -c "from dlrecipe.tasks import task_named, direction; print(task_named('multiclass', 3).num_outputs, direction('val/acc'))"
"""

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
from dlrecipe.tasks.builtin import Binary, Multiclass, Regression

__all__ = [
    "DIRECTIONS", "REGISTRY", "Binary", "Multiclass", "Regression", "Task", "as_task",
    "direction", "metric_names", "register_task", "task_named", "task_names",
]  # fmt: skip
