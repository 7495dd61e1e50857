"""``shiphub``: the operator's command line."""
