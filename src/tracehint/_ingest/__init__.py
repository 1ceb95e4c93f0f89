"""Input formats: discovery of session files, chunked line reading, and per-format parsers."""
