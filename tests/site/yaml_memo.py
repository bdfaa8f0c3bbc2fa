"""Test speed only: Copier's YAML parsing memoised for the test process.

Copier parses YAML with PyYAML's pure-Python loader, over and over: every copy and update loads
copier.yml and the question files it includes (about 65 ms), and parses every `type: yaml`
answer and default (the service catalog alone, about 10 ms) several times per render; in a warm
test process that is about a third of a render. Both are pure functions of text, so the suite
memoises them: `load_template_config` by the bytes of copier.yml and of every file its
`!include` lines reach (recursively), `parse_yaml_string` by its string. Each hit returns a deep
copy, so Copier may change what it gets as it does now; errors are not memoised. Copier's logic
and the rendered output are untouched (tests/test_jinja_cache.py compares renders byte for byte).
"""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any

from copier import _template, _user_data

_INCLUDE = re.compile(rb"!include\s+([^\s#]+)")
ORIGINALS = {"load_template_config": _template.load_template_config, "parse_yaml_string": _user_data.parse_yaml_string}
_configs: dict[tuple, Any] = {}
_strings: dict[str, Any] = {}


def _config_key(conf_path: Path, quiet: bool) -> tuple:
    """The bytes of copier.yml and of every file its !include lines reach, recursively."""
    root, digest, seen, todo = conf_path.parent, hashlib.sha256(), set(), [conf_path]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        data = path.read_bytes()
        digest.update(str(path.relative_to(root)).encode() + b"\0" + data + b"\0")
        for pattern in _INCLUDE.findall(data):
            todo += sorted(root.glob(pattern.decode()))
    return digest.hexdigest(), quiet


def load_template_config(conf_path: Path, quiet: bool = False) -> Any:
    key = _config_key(conf_path, quiet)
    if key not in _configs:
        _configs[key] = ORIGINALS["load_template_config"](conf_path, quiet)
    return copy.deepcopy(_configs[key])


def parse_yaml_string(string: Any) -> Any:
    if not isinstance(string, str):
        return ORIGINALS["parse_yaml_string"](string)
    if string not in _strings:
        _strings[string] = ORIGINALS["parse_yaml_string"](string)
    return copy.deepcopy(_strings[string])


def install(on: bool = True) -> None:
    """Memoise (on) or put Copier's own functions back (off)."""
    load, parse = (load_template_config, parse_yaml_string) if on else ORIGINALS.values()
    _template.load_template_config = load
    _user_data.parse_yaml_string = parse
    _user_data.CAST_STR_TO_NATIVE["yaml"] = parse
