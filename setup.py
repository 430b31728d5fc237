# Metadata lives in pyproject.toml; this file adds what it cannot say: the native instruction
# counter, and the top-level asm/ and scenarios/ copied into the package (harness/data/) when a
# wheel is built, so an installed harness finds them through importlib.resources. An editable
# checkout reads the top-level folders themselves (harness/data/__init__.py).
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

DATA_DIRS = ("asm", "scenarios")


class build_py_with_data(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for name in DATA_DIRS:
            dest = Path(self.build_lib, "harness", "data", name)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(name, dest, ignore=shutil.ignore_patterns("__pycache__", "*.o", "*.elf"))


setup(ext_modules=[Extension("harness.machine._icount", ["harness/machine/_icount.c"])],
      cmdclass={"build_py": build_py_with_data})
