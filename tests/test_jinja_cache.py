"""The suite's Jinja compile memo (tests/jinja_cache.py) changes no render: a platform repository
with several clusters, services and apps (file names from `{% yield %}`) and an app repository with
environments, rendered with Jinja's own compile and with the memo, are byte-identical."""

from __future__ import annotations

from pathlib import Path

import copier
import pytest
from jinja2 import Environment

import jinja_cache
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
def test_the_compile_memo_changes_no_rendered_byte(template_snapshot, tmp_path, template):
    def render(dst: Path) -> dict[str, bytes]:
        copier.run_copy(str(template_snapshot), dst, data={"template": template, **ANSWERS[template]}, defaults=True,
                        unsafe=True, vcs_ref="0.0.1", quiet=True, skip_tasks=True)
        return tree(dst)

    assert Environment.compile is jinja_cache._cached_compile  # installed by conftest
    Environment.compile = jinja_cache._compile
    try:
        plain = render(tmp_path / "plain")
    finally:
        jinja_cache.install()
    assert render(tmp_path / "first") == plain  # fills the memo for what it had not seen
    assert render(tmp_path / "again") == plain  # every source a hit
