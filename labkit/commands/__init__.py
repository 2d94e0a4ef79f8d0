"""One module per ``labkit`` command group; each defines ``register(subparsers)``."""
