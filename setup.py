# Only the native instruction counter needs setup.py; metadata lives in pyproject.toml.
from setuptools import Extension, setup

setup(ext_modules=[Extension("harness.machine._icount", ["harness/machine/_icount.c"])])
