"""The field's exchange formats: SBML, Antimony and PEtab, in and out.

Each format lives in its own module and imports its library (python-libsbml, antimony,
petab) when it is used, so ``import mechanistic`` stays free of them:

* :mod:`mechanistic.formats.sbml_out`: a :class:`~mechanistic.model.Model` (with its
  parameter values, control schedules and doses) as an SBML Level 3 document.
* :mod:`mechanistic.formats.sbml_in`: an SBML document (untrusted) as a Model, or one
  :class:`~mechanistic.formats.sbml_in.SBMLImportError` naming every element it cannot map.
* :mod:`mechanistic.formats.antimony_text`: the Antimony form, through SBML.
* :mod:`mechanistic.formats.petab_out`: a fitting problem (model, data, bounds) as PEtab.
* :mod:`mechanistic.formats.mathml`: the SBML math tree to and from sympy, by walking
  libsbml's ``ASTNode``; no text from a file is ever evaluated.
"""
