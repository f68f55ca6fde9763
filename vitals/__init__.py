"""Vital signs layer: serial links, one parser per monitor family, the sample model, simulators."""
