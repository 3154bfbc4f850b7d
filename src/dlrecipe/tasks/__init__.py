"""Tasks: one object per kind of target, found by name (see tasks/base.py for the seam).

    python -c "from dlrecipe.tasks import task_named, direction; print(task_named('multiclass', 3).num_outputs, direction('val/acc'))"

Importing this package stays light (no torch): the built-in task classes load on first use.
"""

from typing import Any

from dlrecipe.errors import ConfigError
from dlrecipe.tasks.base import DIRECTIONS, REGISTRY, Task, direction, metric_names, register_task

__all__ = [
    "DIRECTIONS", "REGISTRY", "Binary", "Multiclass", "Regression", "Task", "as_task",
    "direction", "metric_names", "register_task", "task_named", "task_names",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in ("Binary", "Multiclass", "Regression"):
        from dlrecipe.tasks import builtin

        return getattr(builtin, name)
    raise AttributeError(f"module 'dlrecipe.tasks' has no attribute {name!r}")


def task_names() -> list[str]:
    _load_builtin()
    return list(REGISTRY)


def _load_builtin() -> None:
    # Here, not in base.py: builtin.py imports base.py, so base importing it back is a cycle.
    import dlrecipe.tasks.builtin  # noqa: F401  (registers regression, binary, multiclass)


def task_named(name: str, num_classes: int = 0) -> Task:
    """The task object for a task name (as stored in DataInfo, summary.json, checkpoints)."""
    _load_builtin()
    if name not in REGISTRY:
        raise ConfigError(
            f"task {name!r} is unknown; known tasks are {task_names()} (a task of your own: "
            "import the module that registers its class with dlrecipe.tasks.register_task)"
        )
    return REGISTRY[name](num_classes)


def as_task(task: str | Task, num_classes: int = 0) -> Task:
    """A Task object from either a Task or its name."""
    return task if isinstance(task, Task) else task_named(task, num_classes)
