"""The one part of the build pyproject.toml cannot declare: the optional C extension of the matcher.

watcher/rules/_select.c does steps 1 and 2 of rule matching (see watcher/rules/matcher.py) in C: the whole match
runs ~1.4x faster (bench/match.py prints both). It is optional: where no C compiler is at hand the build goes on
without it, and the matcher runs its Python implementation, with the same results (`watcher run` logs a warning).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("watcher.rules._select", ["watcher/rules/_select.c"], optional=True)])
