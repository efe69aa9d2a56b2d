"""The offline library proposer: textbook motifs, atomic refinements, rule-based repairs
and counterfactual translation by roles. No LLM; deterministic under a seed."""
