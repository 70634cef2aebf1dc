"""Worked examples: small real models that exercise the whole pipeline end to end."""
