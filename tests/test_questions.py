"""Questions a person can answer (issue 15): what the questionnaire shows, and in which order.

Checked rules (questions/common.yml):
- Prompt: Copier shows `help`, rendered, as the prompt. Every question has one, and every line of
  it fits an 80-column terminal, where prompt_toolkit cuts what passes the edge; the first line
  after the prompt mark (tests/messages.py, TERMINAL_WIDTH and PROMPT_MARK). For every question
  that has an answer (all but the computed values, `when: false`), that first line is the
  question itself, ending with '?'; the detail follows below it.
- Order: Copier asks in definition order (copier.yml's !include order). `template` comes first,
  then who and what the repository is for (platform: customer_name, cluster_name, cluster_domain,
  platform_repo_url; app: app_name, app_repo_url), and the tooling (ci, check_package_url) last.
- References: a question's templated settings only use answers defined before it.
- Validators: the first line of every refusal says what to answer (tests/messages.py), checked on
  every case of the bad-answer tables; here, that every validator has such a case.
- Machine-filled answers (`apps`, filled by onboarding) are never prompted, yet recorded and
  still taken (and validated) from --data.
"""

from __future__ import annotations

import contextlib
import unicodedata
from pathlib import Path

import copier._main
import jinja2
import jinja2.meta
import pytest
from copier._main import Worker
from copier._template import filter_config, load_template_config

import test_app_validators
import test_platform_validators
import test_reliability_corpus
from conftest import ROOT, cluster_entry
from messages import ANSWERED_AS, PROMPT_MARK, TERMINAL_WIDTH

CONFIG, QUESTIONS = filter_config(load_template_config(ROOT / "copier.yml"))
ORDER = list(QUESTIONS)
# Settings of a question that Copier renders with Jinja before (or while) asking it.
TEMPLATED = ("default", "when", "ask", "validator", "help", "choices", "placeholder", "type", "multiline")
# Never prompted: filled by onboarding (apps) or read from platform_repo (platform_answers).
NOT_ASKED = {"apps", "platform_answers"}
IDENTITY = {"platform": ["customer_name", "cluster_name", "cluster_domain", "platform_repo_url"],
            "app": ["app_name", "app_repo_url"]}
TOOLING = ["ci", "check_package_url"]
# Copier's filters (realpath, regex_search…): an unknown filter fails the parse.
JINJA = jinja2.Environment(extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"])
ENTRY = {"name": "cart", "url": "ssh://git@github.com/acme/cart", "branch": "main", "secrets": False,
         "receiver": "", "known_hosts": ""}


def computed(name: str) -> bool:
    return QUESTIONS[name].get("when") is False


def first_line(name: str) -> str:
    return str(QUESTIONS[name].get("help", "")).split("\n", 1)[0]


def referenced(value: object) -> set[str]:
    """Names a templated setting reads (strings anywhere inside lists and mappings too)."""
    if isinstance(value, str):
        return jinja2.meta.find_undeclared_variables(JINJA.parse(value))
    if isinstance(value, dict):
        return set().union(*(referenced(item) for pair in value.items() for item in pair))
    if isinstance(value, list):
        return set().union(*(referenced(item) for item in value))
    return set()


def columns(text: str) -> int:
    """Terminal columns `text` takes: wide (East Asian) characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


@pytest.mark.parametrize("name", ORDER)
def test_the_prompt_asks_the_question_on_its_first_line(name):
    line = first_line(name)
    assert line.strip(), f"{name}: no help"
    if not computed(name):
        assert line.endswith("?"), f"{name}: the first line does not ask the question: {line!r}"


# Representative answers of each template: enough that every question is asked or computed (several
# environments, a Secret), so that a help text using them renders as a person would see it.
HELP_ANSWERS = [
    {"template": "platform", "clusters": [cluster_entry("staging", test_app_validators.GOOD_KEY)]},
    {"template": "app", "environments": "staging,prod", "secret_keys": "DATABASE_URL",
     "secrets_age_recipients": test_app_validators.GOOD_KEY},
]


@pytest.fixture(scope="module")
def rendered_help(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Every question's help as Copier renders it (Jinja in help texts included), once per set of
    HELP_ANSWERS it renders with (a help may use answers only one template defines)."""
    texts: dict[str, list[str]] = {name: [] for name in ORDER}
    for data in HELP_ANSWERS:
        with Worker(src_path=str(ROOT), dst_path=tmp_path_factory.mktemp("help"), data=data, defaults=True,
                    unsafe=True, vcs_ref="HEAD", quiet=True) as worker:
            worker._ask()
            context = worker._render_context()
            for name in ORDER:
                with contextlib.suppress(jinja2.UndefinedError):
                    texts[name].append(worker.jinja_env.from_string(str(QUESTIONS[name]["help"])).render(context))
    return texts


@pytest.mark.parametrize("name", ORDER)
def test_every_line_of_the_prompt_fits_the_terminal(name, rendered_help):
    """Copier prompts with the rendered help; prompt_toolkit cuts a line at the terminal's edge (in
    an 80-column terminal, "…, so only Flux" read "…, so onl")."""
    assert rendered_help[name], f"{name}: its help rendered for no template"
    for text in rendered_help[name]:
        first, *rest = text.split("\n")
        assert PROMPT_MARK + columns(first) <= TERMINAL_WIDTH, (
            f"{name}: first line of {columns(first)} columns after the {PROMPT_MARK}-column prompt mark: {first!r}")
        too_long = [line for line in rest if columns(line) > TERMINAL_WIDTH]
        assert not too_long, f"{name}: lines longer than {TERMINAL_WIDTH} columns: {too_long}"


@pytest.mark.parametrize("template", ["platform", "app"])
def test_who_and_what_come_before_the_tooling(template):
    assert ORDER[0] == "template"
    identity = [ORDER.index(name) for name in IDENTITY[template]]
    tooling = [ORDER.index(name) for name in TOOLING]
    assert identity == sorted(identity) and max(identity) < min(tooling), ORDER


def test_the_tooling_is_asked_last():
    asked = [name for name in ORDER if not computed(name) and name not in NOT_ASKED]
    assert asked[-len(TOOLING):] == TOOLING, asked


@pytest.mark.parametrize("name", ORDER)
def test_a_question_only_uses_answers_defined_before_it(name):
    """Copier renders in definition order: a later answer would be undefined (StrictUndefined)."""
    external = referenced(CONFIG.get("external_data", {}))
    uses = referenced({key: QUESTIONS[name][key] for key in TEMPLATED if key in QUESTIONS[name]})
    if "_external_data" in uses:  # loaded lazily, when the question reads it
        uses |= external
    later = sorted(used for used in uses & set(ORDER) if ORDER.index(used) > ORDER.index(name))
    assert not later, f"{name} uses {later}, defined after it"


def test_every_validator_has_a_case_in_the_bad_answer_tables():
    """So that the first-line rule of tests/messages.py is checked on every validator."""
    fields = {field for field, _, _ in test_platform_validators.BAD_ANSWERS}
    fields |= {field for _, field, _ in test_app_validators.BAD_ANSWERS}
    fields |= {case.field for case in test_reliability_corpus.CASES if case.entry in ("platform", "app")}
    fields = {field.split("[")[0] for field in fields}
    # A refusal by platform_answers' validator names platform_repo, the answer a person gives
    # (corpus: app-platform-repo-not-platform).
    fields |= {question for question, answer in ANSWERED_AS.items() if answer in fields}
    missing = [name for name in ORDER if "validator" in QUESTIONS[name] and name not in fields]
    assert not missing, f"validators without a bad answer in the tables: {missing}"


# What the questionnaire prompts: Copier's own questionnaire (Worker._ask, what `copier copy` runs
# before rendering; pinned Copier, as hooks/apprender.py) with its prompt replaced by one that
# records the question and takes its default (what pressing Enter does). No render: the answers are
# what Copier records (Worker._answers_to_remember is the answers file's `_copier_answers`).


@pytest.fixture
def prompted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names: list[str] = []

    def prompt(questions, answers):
        (question,) = questions
        if question["when"](answers):
            names.append(question["name"])
        return dict(answers)

    monkeypatch.setattr(copier._main, "unsafe_prompt", prompt)
    return names


def questionnaire(tmp_path: Path, data: dict) -> dict:
    """The answers Copier records for an interactive copy (no --defaults) given `data`."""
    with Worker(src_path=str(ROOT), dst_path=tmp_path / "dst", data=data, defaults=False, unsafe=True,
                vcs_ref="HEAD", quiet=True) as worker:
        worker._ask()
        return dict(worker._answers_to_remember())


def test_platform_questionnaire_asks_who_first_and_never_apps(tmp_path, prompted):
    answers = questionnaire(tmp_path, {})
    assert prompted[:4] == ["template", "customer_name", "cluster_name", "cluster_domain"], prompted
    assert prompted[-2:] == TOOLING and "apps" not in prompted, prompted
    assert answers["apps"] == [] and answers["ci"] == "github", answers


def test_apps_still_come_from_data_and_are_validated(tmp_path, prompted):
    answers = questionnaire(tmp_path, {"template": "platform", "apps": [ENTRY]})
    assert "apps" not in prompted and "customer_name" in prompted, prompted
    assert answers["apps"] == [ENTRY], answers
    with pytest.raises(ValueError, match="apps\\[cart\\].url must be ssh://"):
        questionnaire(tmp_path, {"template": "platform", "apps": [{**ENTRY, "url": "https://github.com/acme/cart"}]})


def test_app_questionnaire_asks_the_app_name_first_and_the_tooling_last(tmp_path, prompted):
    answers = questionnaire(tmp_path, {"template": "app"})
    assert prompted[:2] == ["app_name", "platform_repo"] and prompted[-2:] == TOOLING, prompted
    assert not NOT_ASKED & set(prompted) and "apps" not in answers, prompted


def test_the_platform_check_branch_is_asked_with_a_platform_url_and_defaults_to_the_platforms(
        tmp_path, prompted, rendered):
    """CI clones the platform at the branch its Flux reconciles: the platform's own answer when
    platform_repo tells it, else empty (the platform's default branch, whatever its name); without
    a URL there is nothing to clone, so nothing to ask."""
    answers = questionnaire(tmp_path / "alone", {"template": "app"})
    assert "platform_check_branch" not in prompted and "platform_check_branch" not in answers, prompted
    prompted.clear()
    answers = questionnaire(tmp_path / "url", {"template": "app", "platform_check_url": "ssh://git@github.com/acme/gitops"})
    assert "platform_check_branch" in prompted and ORDER.index("platform_check_branch") == ORDER.index("platform_check_url") + 1
    assert answers["platform_check_branch"] == ""
    platform = rendered(template="platform", platform_repo_branch="production")
    answers = questionnaire(tmp_path / "platform", {"template": "app", "platform_repo": str(platform)})
    assert (answers["platform_check_url"], answers["platform_check_branch"]) == (
        "ssh://git@github.com/acme/acme-gitops", "production"), answers
