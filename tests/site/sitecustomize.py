"""Loaded by every Python the tests start with tests/site on PYTHONPATH (conftest): the suite's
memos in subprocesses too, test speed only. Jinja's compile cache (jinja_cache.py) is installed
when the process first imports jinja2, the kustomize build memo (kustomize_memo.py) when it first
imports hooks.kustomize, the template clone memo (clone_memo.py) with Copier, and its file-mode
and answers memos (filemode_memo.py, answers_memo.py) with Copier's Worker, so that the many
Pythons that need none of them (Copier's tasks, the hooks' commands before Copier) start as fast
as without them, and a Python without Jinja (tests of Copier without the tasks' packages) starts
as usual."""

import importlib
import importlib.machinery
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_MEMOS = {"jinja2": ("jinja_cache",), "hooks.kustomize": ("kustomize_memo",), "copier._template": ("clone_memo",),
          "copier._main": ("filemode_memo", "answers_memo")}  # module: the memos to install after it


class _After:
    """A meta path finder that finds nothing itself: it wraps the loader of each module of _MEMOS
    so that its memo is installed right after the module is imported, then leaves it alone."""

    def find_spec(self, name, path=None, target=None):
        if name not in _MEMOS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            run, memos = spec.loader.exec_module, _MEMOS.pop(name)
            if not _MEMOS:
                sys.meta_path.remove(self)

            def exec_module(module):
                run(module)
                if _HERE not in sys.path:  # xdist's workers start from a sys.path of their own
                    sys.path.insert(0, _HERE)
                for memo in memos:
                    importlib.import_module(memo).install()

            spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _After())
