"""Sub-command groups of the ``annotator`` command line; each module exposes ``register(subparsers)``."""
# Services are imported inside each handler so `annotator --help` and light commands start fast.
