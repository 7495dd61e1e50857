"""The HTTP receiver for hub messages."""
