"""Build hook: copy the top-level `datasets/` and `tasks/` YAML folders into the wheel as
`sam_bench/_bundled/{datasets,tasks}`, so a non-editable install finds them (see sam_bench/resources.py).
The project's metadata lives in pyproject.toml."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = ("datasets", "tasks")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        here = Path(__file__).resolve().parent
        for name in BUNDLED:
            target = Path(self.build_lib) / "sam_bench" / "_bundled" / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(here / name, target, ignore=shutil.ignore_patterns("__pycache__"))


setup(cmdclass={"build_py": BuildPyWithData})
