"""Versioned prompt templates, one folder per schema (system.txt + user.txt); see versions.toml."""
