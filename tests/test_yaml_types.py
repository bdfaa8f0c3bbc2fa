"""Every answer is rendered as the YAML value it is: strings YAML would read as another type stay strings.

Property: render a template once with plain marker answers and once with answers drawn from values
that YAML 1.1 or 1.2 reads as a bool, null, number or date (`yes`, `on`, `null`, `1.10`, `0755`,
`1e3`, `2026-01-02` …, each valid for its question). Every rendered YAML file, parsed, must equal
the plain render with each marker replaced by the drawn string: a value that came back as `True`
or `1.1` fails the test. Renders are real Copier runs, so the examples are few.
"""

from __future__ import annotations

from pathlib import Path

import copier
import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from reliability import isolated

# Valid DNS labels (names, namespaces, listeners) that YAML reads as something else.
LABELS = ["yes", "no", "on", "off", "y", "n", "true", "false", "null", "nan", "inf", "e1"]
# Valid git branch names that YAML reads as something else.
BRANCHES = ["1.10", "0755", "1e3", "yes", "null", "2026-01-02", "0x1f", "true", "1_000", "on", "0b101"]

PLATFORM = {  # answer: (plain marker, strategy)
    "customer_name": ("xcustomerx", st.sampled_from(LABELS)),
    "cluster_name": ("xclusterx", st.sampled_from(LABELS)),
    "platform_repo_branch": ("xbranchx", st.sampled_from(BRANCHES)),
    "gateway_name": ("xgatewayx", st.sampled_from(LABELS)),
    "gateway_namespace": ("xgwnsx", st.sampled_from(LABELS)),
    "gateway_listener": ("xlistenerx", st.sampled_from([label for label in LABELS if label != "http"])),
    "gateway_tls_secret": ("xtlsx", st.sampled_from(LABELS)),
}
APP = {
    "app_name": ("xappx", st.sampled_from(LABELS)),
    "app_repo_branch": ("xappbranchx", st.sampled_from(BRANCHES)),
    "route_gateway_name": ("xroutegwx", st.sampled_from(LABELS)),
    "route_gateway_namespace": ("xroutensx", st.sampled_from(LABELS)),
    "route_section_name": ("xsectionx", st.sampled_from(LABELS)),
    "gateway_proxy_namespace": ("xproxynsx", st.sampled_from(LABELS)),
    "secret_keys": ("XSECRETX", st.sampled_from(["YES", "ON", "TRUE", "NULL", "No", "Off", "Y"])),  # Secret keys
}
TEAM_KEY = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
APP_FIXED = {"secrets_age_recipients": TEAM_KEY}  # secret_keys needs a recipient
APP_ENTRY = {"url": "ssh://git@github.com/acme/xentryx", "secrets": True, "receiver": "github", "known_hosts": ""}


def render(template_dir: Path, dst: Path, template: str, answers: dict) -> dict[str, list]:
    """Every YAML file of a render, parsed, by path."""
    with isolated(dst.parent / f"{dst.name}-home"):
        copier.run_copy(str(template_dir), dst, data={"template": template, **answers}, defaults=True, unsafe=True,
                        vcs_ref="0.0.1", quiet=True, skip_tasks=True)
    return {path.relative_to(dst).as_posix(): list(yaml.safe_load_all(path.read_text()))
            for path in sorted(dst.rglob("*")) if path.is_file() and path.name.endswith((".yaml", ".yml"))}


def substitute(node: object, values: dict[str, str]) -> object:
    """The plain render with every marker replaced by its drawn value (in keys, strings, paths)."""
    if isinstance(node, dict):
        return {substitute(key, values): substitute(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [substitute(item, values) for item in node]
    if isinstance(node, str):
        for marker, value in values.items():
            node = node.replace(marker, value)
    return node


def platform_answers(values: dict[str, str]) -> dict:
    name = values.get("xentryx", "xentryx")
    branch = values.get("xentrybranchx", "xentrybranchx")
    return {"sops_age_recipients": TEAM_KEY,
            "apps": [{**APP_ENTRY, "name": name, "branch": branch, "url": f"ssh://git@github.com/acme/{name}"}]}


@pytest.fixture(scope="module")
def plain(template_snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("yaml-plain")
    markers = {marker: marker for marker, _ in [*PLATFORM.values(), *APP.values()]}
    return {
        "platform": render(template_snapshot, root / "platform", "platform",
                           {**{key: marker for key, (marker, _) in PLATFORM.items()}, **platform_answers(markers)}),
        "app": render(template_snapshot, root / "app", "app", {**{key: marker for key, (marker, _) in APP.items()}, **APP_FIXED}),
    }


# Few examples (each is two Copier renders) and no shrinking (a failure names its answers already).
SETTINGS = settings(max_examples=5, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(drawn=st.fixed_dictionaries({key: strategy for key, (_, strategy) in PLATFORM.items()}),
       entry=st.sampled_from(LABELS), entry_branch=st.sampled_from(BRANCHES))
def test_platform_answers_stay_strings(template_snapshot, plain, tmp_path_factory, drawn, entry, entry_branch):
    assume(entry != drawn["gateway_namespace"])  # an app may not be named after the Gateway's namespace
    values = {PLATFORM[key][0]: value for key, value in drawn.items()} | {"xentryx": entry, "xentrybranchx": entry_branch}
    dst = tmp_path_factory.mktemp("yaml-platform") / "repo"
    rendered = render(template_snapshot, dst, "platform", {**drawn, **platform_answers(values)})
    expected = {substitute(path, values): substitute(docs, values) for path, docs in plain["platform"].items()}
    assert rendered == expected


@SETTINGS
@given(drawn=st.fixed_dictionaries({key: strategy for key, (_, strategy) in APP.items()}))
def test_app_answers_stay_strings(template_snapshot, plain, tmp_path_factory, drawn):
    values = {APP[key][0]: value for key, value in drawn.items()}
    dst = tmp_path_factory.mktemp("yaml-app") / "repo"
    rendered = render(template_snapshot, dst, "app", {**drawn, **APP_FIXED})
    expected = {substitute(path, values): substitute(docs, values) for path, docs in plain["app"].items()}
    assert rendered == expected
