"""The suite's memos (tests/site: Jinja's compile, Copier's YAML parsing) change no render: a platform repository
with several clusters, services and apps (file names from `{% yield %}`) and an app repository with
environments, rendered with Jinja's and Copier's own functions, with the memos, and with code a process finds in the
memo's disk folder, are byte-identical; and the Pythons the tests start have the memo too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import copier
from copier import _template
import pytest
from jinja2 import Environment

import jinja_cache
import yaml_memo
from conftest import cluster_entry
from updating import tree

KEY = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
APP = {"name": "shop", "url": "ssh://git@github.com/acme/shop", "branch": "main", "secrets": True,
       "receiver": "github", "known_hosts": "", "clusters": ["prod", "staging"]}
ANSWERS = {
    "platform": {"sops_age_recipients": KEY, "platform_services": ["cert-manager", "gateway-api", "gateway", "kyverno"],
                 "clusters": [cluster_entry("staging", KEY, platform_services=["gateway-api", "gateway", "velero"])],
                 "apps": [APP]},
    "app": {"app_name": "shop", "environments": "staging,prod", "secret_keys": "TOKEN", "secrets_age_recipients": KEY},
}


@pytest.mark.parametrize("template", ["platform", "app"])
def test_the_compile_memo_changes_no_rendered_byte(template_snapshot, tmp_path, template, monkeypatch):
    def render(dst: Path) -> dict[str, bytes]:
        copier.run_copy(str(template_snapshot), dst, data={"template": template, **ANSWERS[template]}, defaults=True,
                        unsafe=True, vcs_ref="0.0.1", quiet=True, skip_tasks=True)
        return tree(dst)

    assert Environment.compile is jinja_cache._cached_compile  # installed by conftest
    assert _template.load_template_config is yaml_memo.load_template_config
    Environment.compile = jinja_cache._compile
    yaml_memo.install(on=False)
    try:
        plain = render(tmp_path / "plain")
    finally:
        jinja_cache.install()
        yaml_memo.install()
    # A disk folder of this test's own, and a process that has compiled nothing yet.
    monkeypatch.setenv("JINJA_CACHE_DIR", str(tmp_path / "disk"))
    (tmp_path / "disk").mkdir()
    monkeypatch.setattr(jinja_cache, "_compiled", {})
    stored = []
    for name in ("first", "again", "from-disk"):  # compiles; hits in memory; reads the disk folder
        if name == "from-disk":
            monkeypatch.setattr(jinja_cache, "_compiled", {})
        assert render(tmp_path / name) == plain
        stored.append(len(list((tmp_path / "disk").iterdir())))
    # What names the destination or the clone of the template (a temporary folder) is not stored.
    assert stored[0] > 100 and stored[0] == stored[1] == stored[2], stored


def test_the_pythons_the_tests_start_have_the_memo():
    compile_fn = subprocess.run([sys.executable, "-c", "import jinja2; print(jinja2.Environment.compile.__qualname__)"],
                                capture_output=True, text=True, check=True).stdout.strip()
    assert compile_fn == "_cached_compile"
