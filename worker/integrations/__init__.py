"""One module per provider: its client, its mappings to and from hub objects, its handlers."""
