"""The semantic cache plan (placeholder until implemented)."""
