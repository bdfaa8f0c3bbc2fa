"""How a validator's refusal reads (questions/common.yml), shared by the bad-answer tables
(tests/test_platform_validators.py, tests/test_app_validators.py, tests/test_reliability_corpus.py,
tests/test_onboard_units.py): Copier prints "Validation error for question '<name>': <message>",
where <message> is the validator's rendered output, and an interactive prompt shows only its first
line. That line says what to answer and fits an 80-column terminal together with Copier's prefix:
it starts with one of LEADS, names the answer to change unless the prefix does (the question is
the answer, but for ANSWERED_AS), and leaves out the refused value (which may be arbitrarily
long); the detail and the refused value follow on later lines.
"""

from __future__ import annotations

from hooks.errors import VALIDATOR_LEADS as LEADS, VALIDATOR_REFUSAL as REFUSAL

# What a person sees: a standard terminal, where Copier's prompt (prompt_toolkit) cuts every line at
# the edge. Copier's prompt mark (🎤, two columns wide, then a space) precedes the first line of a
# question's help (tests/test_questions.py).
TERMINAL_WIDTH = 80
PROMPT_MARK = 3
PREFIX = "Validation error for question '{question}': "
# A validator that checks another answer than its own: platform_answers is read from platform_repo,
# the answer a person gives.
ANSWERED_AS = {"platform_answers": "platform_repo"}


def validator_refusal(text: str) -> tuple[str, str] | None:
    """(question, message) of Copier's validator refusal in `text`, or None when there is none
    (a task's error, an invalid choice, a refusal by the hooks)."""
    match = REFUSAL.search(text)
    return (match["question"], match["message"]) if match else None


def assert_leads_with_the_answer(text: str) -> None:
    """`text` holds a validator's refusal whose first line says what to answer."""
    refusal = validator_refusal(text)
    assert refusal is not None, f"no validator refusal in: {text}"
    question, message = refusal
    first = message.split("\n", 1)[0]
    shown = PREFIX.format(question=question) + first
    assert len(shown) <= TERMINAL_WIDTH, f"first line of {len(shown)} characters with Copier's prefix: {shown!r}"
    assert first.startswith(LEADS), f"first line does not lead with what to answer ({'/'.join(LEADS)}): {first!r}"
    answer = ANSWERED_AS.get(question, question)
    assert answer in shown, f"first line does not name {answer}: {shown!r}"
    assert "(got" not in first, f"the refused value belongs after the first line: {first!r}"
    assert "\n" in message.strip(), f"no detail after the first line: {message!r}"


def check_any_refusal(text: str) -> None:
    """Where a failure may come from a validator or from elsewhere: check the validator's, if any."""
    if validator_refusal(text) is not None:
        assert_leads_with_the_answer(text)
