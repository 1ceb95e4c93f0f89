"""Hint layers: corrective templates, the raw error text, and (later) the LLM judge."""
