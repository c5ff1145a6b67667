"""``python -m recsys_core``: the command line.

Each command group is one module exposing ``register(subparsers)``; it adds its parser(s) and
sets ``func=run_xxx`` (a function ``(args) -> int``) as the parser default. Modules are listed
explicitly in ``COMMANDS`` below.
"""
