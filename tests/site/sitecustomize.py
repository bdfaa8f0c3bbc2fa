"""Loaded by every Python the tests start with tests/site on PYTHONPATH (conftest): the suite's
Jinja compile cache (jinja_cache.py) in subprocesses too. Test speed only. Installed when the
process first imports jinja2, so that the many Pythons that never render (Copier's tasks, the
hooks' commands before Copier) start as fast as without it, and a Python without Jinja (tests of
Copier without the tasks' packages) starts as usual."""

import importlib.machinery
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


class _AfterJinja:
    """A meta path finder that finds nothing itself: it wraps the loader of jinja2 so that the
    cache is installed right after jinja2 is imported, then leaves the import system alone."""

    def find_spec(self, name, path=None, target=None):
        if name != "jinja2":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                if _HERE not in sys.path:  # xdist's workers start from a sys.path of their own
                    sys.path.insert(0, _HERE)
                import jinja_cache

                jinja_cache.install()

            spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _AfterJinja())
