"""The local stack behind ``bin/run``: Redis, the provider simulators and every Procfile line."""
