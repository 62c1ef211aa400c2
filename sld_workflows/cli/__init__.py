"""The ``sld`` command. Each module here that defines ``register(subparsers)`` adds subcommands."""
