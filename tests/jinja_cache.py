"""Test speed only: Jinja compiles each template source once per test process.

Copier builds a fresh Jinja environment for every copy and update and compiles every question
default, validator, help text, path and file again: about 1,200 compilations per platform render,
more than half of its time. Compiling is a pure function of the source and the environment's
settings, so the suite memoises it. Rendering, Copier's logic and the templates' output are
untouched; users' Copier and the benchmarks (bench/, outside pytest) compile as usual.

On a hit the extensions' `preprocess` hooks still run: Copier's `yield` extension resets its
yield context there, and a stale context would make Copier treat a plain path as a `{% yield %}`.
"""

from __future__ import annotations

from types import CodeType

from jinja2 import Environment

_SETTINGS = ("block_start_string", "block_end_string", "variable_start_string", "variable_end_string",
             "comment_start_string", "comment_end_string", "line_statement_prefix", "line_comment_prefix",
             "trim_blocks", "lstrip_blocks", "newline_sequence", "keep_trailing_newline", "optimized",
             "autoescape", "finalize", "undefined", "is_async")
_compiled: dict[tuple, CodeType] = {}
_compile = Environment.compile


def _signature(env: Environment) -> tuple:
    """What, besides the source, decides the code Jinja generates."""
    return (type(env), tuple(sorted(env.extensions)), tuple(sorted(env.filters)), tuple(sorted(env.tests)),
            *(getattr(env, name, None) for name in _SETTINGS))


def _cached_compile(self: Environment, source, name=None, filename=None, raw=False, defer_init=False):
    if raw or not isinstance(source, str):
        return _compile(self, source, name, filename, raw, defer_init)
    key = (source, name, filename, defer_init, _signature(self))
    code = _compiled.get(key)
    if code is None:
        code = _compiled[key] = _compile(self, source, name, filename, raw, defer_init)
    else:
        self.preprocess(source, name, filename)
    return code


def install() -> None:
    Environment.compile = _cached_compile
