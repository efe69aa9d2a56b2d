"""Untrusted SBML and Antimony: what mmw cannot express, malformed files and hostile XML are
each one clear error naming the element, and the command line prints one line, exit 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mechanistic.formats.antimony_text import AntimonyError, antimony_to_model
from mechanistic.formats.sbml_in import SBMLImportError, sbml_to_model
from workbench.cli import app

MATHML = 'xmlns="http://www.w3.org/1998/Math/MathML"'


def _sbml(body: str, species: str = '<species id="A" compartment="c" initialAmount="1" '
          'hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>',
          params: str = '<parameter id="k" value="0.5" constant="true"/>',
          version: int = 2) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><sbml xmlns="http://www.sbml.org/sbml/'
            f'level3/version{version}/core" level="3" version="{version}"><model id="m">'
            '<listOfCompartments><compartment id="c" size="1" constant="true"/>'
            f'</listOfCompartments><listOfSpecies>{species}</listOfSpecies>'
            f'<listOfParameters>{params}</listOfParameters>{body}</model></sbml>')


def _decay(math: str, rid: str = "decay", extra: str = "") -> str:
    return (f'<listOfReactions><reaction id="{rid}" reversible="false" {extra}>'
            '<listOfReactants><speciesReference species="A" stoichiometry="1" '
            f'constant="true"/></listOfReactants><kineticLaw><math {MATHML}>{math}</math>'
            '</kineticLaw></reaction></listOfReactions>')


UNSUPPORTED = {
    "delay": (_decay('<apply><times/><ci>k</ci><apply><csymbol encoding="text" '
                     'definitionURL="http://www.sbml.org/sbml/symbols/delay">delay</csymbol>'
                     '<ci>A</ci><cn>2</cn></apply></apply>'), ["reaction 'decay'", "delay()"]),
    "algebraic rule": (f'<listOfRules><algebraicRule metaid="constraint1"><math {MATHML}>'
                       '<apply><minus/><ci>A</ci><ci>k</ci></apply></math></algebraicRule>'
                       '</listOfRules>', ["algebraic rule constraint1"]),
    "state-triggered event": (f'<listOfEvents><event id="crash" useValuesFromTriggerTime='
                              f'"true"><trigger initialValue="true" persistent="true"><math '
                              f'{MATHML}><apply><gt/><ci>A</ci><cn>5</cn></apply></math>'
                              '</trigger><listOfEventAssignments><eventAssignment variable='
                              f'"A"><math {MATHML}><cn>0</cn></math></eventAssignment>'
                              '</listOfEventAssignments></event></listOfEvents>',
                              ["event 'crash'", "not 'time >= a constant'"]),
    "delayed event": (f'<listOfEvents><event id="late" useValuesFromTriggerTime="true">'
                      f'<trigger initialValue="true" persistent="true"><math {MATHML}><apply>'
                      '<geq/><csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/'
                      'symbols/time">t</csymbol><cn>1</cn></apply></math></trigger><delay>'
                      f'<math {MATHML}><cn>3</cn></math></delay><listOfEventAssignments>'
                      f'<eventAssignment variable="A"><math {MATHML}><cn>0</cn></math>'
                      '</eventAssignment></listOfEventAssignments></event></listOfEvents>',
                      ["event 'late'", "delayed events"]),
    "unsupported function": (_decay('<apply><floor/><ci>A</ci></apply>', "rounding"),
                             ["reaction 'rounding'", "floor()"]),
}


@pytest.mark.parametrize("feature", list(UNSUPPORTED))
def test_a_feature_the_model_language_lacks_is_named(feature):
    text, needles = UNSUPPORTED[feature]
    with pytest.raises(SBMLImportError) as info:
        sbml_to_model(_sbml(text), "model.xml")
    message = str(info.value)
    assert message.startswith("model.xml: cannot import: ")
    for needle in needles:
        assert needle in message
    assert len(info.value.problems) == 1


def test_a_fast_reaction_is_named():
    text = _sbml(_decay("<apply><times/><ci>k</ci><ci>A</ci></apply>", "equilibrium",
                        'fast="true"'), version=1)
    with pytest.raises(SBMLImportError, match="reaction 'equilibrium': fast reactions"):
        sbml_to_model(text)


def test_every_unsupported_item_is_listed_once():
    body = UNSUPPORTED["algebraic rule"][0] + UNSUPPORTED["state-triggered event"][0]
    with pytest.raises(SBMLImportError) as info:
        sbml_to_model(_sbml(body))
    assert len(info.value.problems) == 2


@pytest.mark.parametrize("text, needle", [
    ("<sbml><model", "not well-formed XML"),
    ('<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa">]><sbml>&a;</sbml>', "DTD"),
    ("<a>" * 500 + "</a>" * 500, "nested more than 200 deep"),
    (_sbml(_decay("<apply><times/><ci>k</ci><ci>nowhere</ci></apply>")),
     "reaction 'decay' kinetic law: refers to 'nowhere'"),
    (_sbml(_decay("<apply><times/>" * 45 + "<ci>A</ci>" + "</apply>" * 45)),
     "nested more than 40 deep"),
])
def test_malformed_or_hostile_files_are_one_error(text, needle):
    with pytest.raises(SBMLImportError, match=needle):
        sbml_to_model(text, "bad.xml")


def test_an_antimony_syntax_error_names_the_line():
    with pytest.raises(AntimonyError, match=r"bad.ant: Error in model string, line 3"):
        antimony_to_model("model m\n  k = 0.5\n  J0: A -> ; k*(A\nend\n", "bad.ant")


@pytest.mark.parametrize("name, text, needle", [
    ("broken.xml", "<sbml><model", "not well-formed XML"),
    ("delay.xml", _sbml(UNSUPPORTED["delay"][0]), "delay()"),
    ("algebraic.sbml", _sbml(UNSUPPORTED["algebraic rule"][0]), "algebraic rule"),
    ("syntax.ant", "model m\n  J0: A -> ; k*(A\nend\n", "syntax error"),
])
@pytest.mark.parametrize("command", ["show", "export"])
def test_the_command_line_prints_one_line_and_exits_2(tmp_path, name, text, needle, command):
    path = tmp_path / name
    path.write_text(text)
    args = [command, str(path)] + (["--sbml", str(tmp_path / "out.xml")]
                                   if command == "export" else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert ("Traceback" not in result.output and result.exception is None) or \
        isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert str(path) in lines[0]
