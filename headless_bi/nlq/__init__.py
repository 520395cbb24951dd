"""Natural-language questions to governed semantic queries (issue 5; not built yet)."""
