"""Model zoo (placeholder package docstring; filled by the models work)."""
