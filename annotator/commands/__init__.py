"""Sub-command groups of the ``annotator`` command line; each module exposes ``register(subparsers)``."""
