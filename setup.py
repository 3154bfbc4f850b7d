"""Build hook: the repo's conf/ ships inside the wheel as dlrecipe/conf.

    pip install --no-deps --target /tmp/dl . && cd $(mktemp -d) && PYTHONPATH=/tmp/dl /tmp/dl/bin/dlrecipe-train

Everything else is in pyproject.toml. conf/ stays at the repo root because that is the copy a
cloned template edits (it wins over the packaged one, see dlrecipe.configs); a non-editable
install has no repo next to it, so it needs its own copy.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONF = Path(__file__).resolve().parent / "conf"


class BuildPyWithConf(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the repo's conf/ directly
        target = Path(self.build_lib) / "dlrecipe" / "conf"
        shutil.rmtree(
            target, ignore_errors=True
        )  # a config deleted from conf/ leaves no stale copy
        shutil.copytree(CONF, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithConf})
