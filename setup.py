"""Build step pyproject.toml cannot declare: the top-level ``resources/`` folder (built-in
models, sample study) is copied into the built package as ``xraystudio/_resources``, so a wheel
carries it. The source tree keeps ``resources/`` at the top level, and an editable install reads
it there (``xraystudio.resources.resources_dir``)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESOURCES = Path(__file__).resolve().parent / "resources"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildWithResources(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False) or not RESOURCES.is_dir():
            return
        target = Path(self.build_lib) / "xraystudio" / "_resources"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(RESOURCES, target, ignore=IGNORED)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if RESOURCES.is_dir() and not getattr(self, "editable_mode", False):
            target = Path(self.build_lib) / "xraystudio" / "_resources"
            outputs += [str(target / p.relative_to(RESOURCES)) for p in RESOURCES.rglob("*")
                        if p.is_file() and not any(part.startswith((".", "__pycache__"))
                                                   for part in p.relative_to(RESOURCES).parts)]
        return outputs


setup(cmdclass={"build_py": BuildWithResources})
