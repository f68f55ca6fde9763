"""Configuration: pydantic models, TOML loading and the documented example."""
