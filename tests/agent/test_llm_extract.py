"""Code and JSON extraction from free-form answers: never raises, says what was wrong."""

from __future__ import annotations

from agent.extract import (
    candidate_id,
    code_blocks,
    comment_field,
    extract_json,
    extract_modules,
    numbered,
    structure_label,
)

MODULE = """# structure: exponential decay
from mechanistic import Gaussian, LogUniform, Model

m = Model("decay")
x = m.state("x")
k = m.param("k", LogUniform(0.01, 1.0))
m.flow(x, None, k * x)
m.init(x=10)
m.observe("y", x, noise=Gaussian(0.1))
"""


def fenced(code: str, lang: str = "python") -> str:
    return f"```{lang}\n{code}```\n"


def test_prose_around_code_gives_the_module():
    answer = "Sure! Here is a model.\n\n" + fenced(MODULE) + "\nIt assumes linear decay."
    found = extract_modules(answer)
    assert found.modules == (MODULE,)
    assert found.problem is None


def test_two_blocks_give_two_modules_and_duplicates_collapse():
    other = MODULE.replace("exponential decay", "decay two").replace('"decay"', '"decay2"')
    found = extract_modules(fenced(MODULE) + "text\n" + fenced(other) + fenced(MODULE))
    assert found.modules == (MODULE, other)


def test_unclosed_fence_runs_to_the_end():
    found = extract_modules("Here:\n```python\n" + MODULE)
    assert found.modules == (MODULE,)
    assert found.unclosed


def test_a_new_fence_inside_an_unclosed_block_starts_a_new_block():
    other = MODULE.replace("decay", "growth")
    found = extract_modules("```python\n" + MODULE + "```python\n" + other + "```\n")
    assert found.modules == (MODULE, other)


def test_no_code_is_a_problem_for_a_follow_up():
    found = extract_modules("I think an SIR model would fit these data well.")
    assert found.modules == ()
    assert "no ```python code block" in found.problem


def test_fragment_without_a_model_is_a_problem():
    found = extract_modules(fenced("m.flow(S, I, beta * S * I)\n"))
    assert found.modules == ()
    assert found.fragments == 1
    assert "does not declare a model" in found.problem


def test_non_python_blocks_are_ignored():
    found = extract_modules(fenced('{"a": 1}\n', "json") + fenced("pip install mmw\n", "bash"))
    assert found.modules == ()
    assert found.problem


def test_a_bare_module_without_fences_is_accepted():
    found = extract_modules(MODULE)
    assert found.modules == (MODULE,)


def test_bare_prose_that_mentions_model_is_not_code():
    found = extract_modules("Use Model( with states S and I, then fit it.")
    assert found.modules == ()


def test_tilde_fences_and_long_backtick_fences():
    assert extract_modules("~~~python\n" + MODULE + "~~~\n").modules == (MODULE,)
    assert extract_modules("````py\n" + MODULE + "````\n").modules == (MODULE,)


def test_code_blocks_report_language_and_closure():
    blocks = code_blocks("```json\n[1]\n```\n```\nx = 1\n")
    assert [(b.lang, b.code, b.closed) for b in blocks] == [("json", "[1]", True),
                                                             ("", "x = 1", False)]


def test_structure_label_from_comment_then_model_name_then_default():
    assert structure_label(MODULE) == "exponential decay"
    assert structure_label('from mechanistic import Model\nm = Model("SIR basic")\n') == \
        "SIR basic"
    assert structure_label("x = 1\n") == "unlabelled"
    assert comment_field("# structure: A\n# change: added waning\n", "change") == "added waning"


def test_candidate_id_is_short_and_stable():
    assert candidate_id(MODULE) == candidate_id(MODULE)
    assert candidate_id(MODULE) != candidate_id(MODULE + "\n")
    assert len(candidate_id(MODULE)) == 10


def test_numbered_lines():
    text = numbered("a\nb\n" + "\n" * 9 + "z")
    assert text.splitlines()[0] == " 1 | a"
    assert text.splitlines()[-1] == "12 | z"


def test_extract_json_from_block_inline_or_nothing():
    assert extract_json('Here:\n```json\n[{"kind": "set"}]\n```') == ([{"kind": "set"}], None)
    assert extract_json('The answer is {"kind": "dose"} as asked.') == ({"kind": "dose"}, None)
    value, problem = extract_json("no json here [at all")
    assert value is None and "no valid JSON" in problem
