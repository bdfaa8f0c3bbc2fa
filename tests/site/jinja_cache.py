"""Test speed only: Jinja compiles each template source once per test session.

Copier builds a fresh Jinja environment for every copy and update and compiles every question
default, validator, help text, path and file again: about 1,200 compilations per platform render,
more than half of its time. Compiling is a pure function of the source and the environment's
settings, so the suite memoises it: in memory for the test process, and on disk in the folder
named by JINJA_CACHE_DIR for every process of the session, so that the commands tests run as
subprocesses (`python -m hooks.onboard`, `opencenter-cluster`, the walkthrough script: each a
new Python that runs Copier) reuse what any other process compiled. Subprocesses load it through
tests/site/sitecustomize.py (conftest puts tests/site on PYTHONPATH). Rendering, Copier's logic
and the templates' output are untouched; users' Copier and the benchmarks (bench/, outside
pytest) compile as usual. The disk entries are marshalled code objects, as Jinja's own
FileSystemBytecodeCache stores them, keyed by the interpreter's bytecode magic as well.

On a hit the extensions' `preprocess` hooks still run: Copier's `yield` extension resets its
yield context there, and a stale context would make Copier treat a plain path as a `{% yield %}`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import tempfile
from pathlib import Path
from types import CodeType

from jinja2 import Environment

_SETTINGS = ("block_start_string", "block_end_string", "variable_start_string", "variable_end_string",
             "comment_start_string", "comment_end_string", "line_statement_prefix", "line_comment_prefix",
             "trim_blocks", "lstrip_blocks", "newline_sequence", "keep_trailing_newline", "optimized",
             "autoescape", "finalize", "undefined", "is_async")
_compiled: dict[tuple, CodeType] = {}
_compile = Environment.compile
_TEMP = tempfile.gettempdir()


def _signature(env: Environment) -> tuple:
    """What, besides the source, decides the code Jinja generates."""
    return (type(env), tuple(sorted(env.extensions)), tuple(sorted(env.filters)), tuple(sorted(env.tests)),
            *(getattr(env, name, None) for name in _SETTINGS))


def _named(part: object) -> object:
    """Classes and functions by module and qualified name, never by address (differs per process)."""
    return f"{part.__module__}.{part.__qualname__}" if callable(part) else part


def _disk_path(key: tuple) -> Path | None:
    """Where another process of this session may have stored the code for `key`."""
    folder = os.environ.get("JINJA_CACHE_DIR")
    if not folder:
        return None
    text = repr([importlib.util.MAGIC_NUMBER, *map(_named, key[:3]), *map(_named, key[3])])
    return Path(folder) / hashlib.sha256(text.encode()).hexdigest()


def _load(path: Path | None) -> CodeType | None:
    if path is None:
        return None
    try:
        return marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None


def _store(path: Path | None, key: tuple, code: CodeType) -> None:
    """Atomically (write then rename): concurrent processes read whole entries or none. Not the
    sources that name a temporary folder: they are one render's own (its destination), never asked
    for again, and thousands of them would only cost writes."""
    if path is None or any(_TEMP in part for part in key[:2] if isinstance(part, str)):
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(marshal.dumps(code))
        os.replace(tmp, path)
    except OSError:
        pass  # a cache: a failed store only costs the next process a compile


def _refile(code: CodeType, filename: str) -> CodeType:
    """`code` as if compiled from `filename`: the only trace the file name leaves in it."""
    consts = tuple(_refile(const, filename) if isinstance(const, CodeType) else const for const in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _cached_compile(self: Environment, source, name=None, filename=None, raw=False, defer_init=False):
    if raw or not isinstance(source, str):
        return _compile(self, source, name, filename, raw, defer_init)
    # Not the file name: Copier loads the template's files from a new clone for every render, and
    # Jinja only passes the name to Python's compile (errors are not memoised).
    key = (source, name, defer_init, _signature(self))
    code = _compiled.get(key)
    if code is None:
        path = _disk_path(key)
        code = _load(path)
        if code is None:
            code = _compile(self, source, name, filename, raw, defer_init)
            _store(path, key, code)
        else:
            self.preprocess(source, name, filename)
        _compiled[key] = code
    else:
        self.preprocess(source, name, filename)
    filename = filename or "<template>"  # as Jinja names what it compiles without one
    return code if code.co_filename == filename else _refile(code, filename)


def install() -> None:
    Environment.compile = _cached_compile
