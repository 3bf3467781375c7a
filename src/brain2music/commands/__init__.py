"""One module per CLI command; each defines ``register(subparsers)``. Discovered by :mod:`brain2music.cli`."""
