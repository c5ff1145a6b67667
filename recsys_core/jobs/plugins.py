"""Extra models and task kinds loaded from ``$RECSYS_EXPLORER_PLUGINS``.

The registries (``recsys_core.models.MODELS``, ``recsys_core.jobs.tasks.TASKS``) are explicit;
this is the one door for code that lives outside the package (a team's private model, or a test
that needs a deliberately slow model inside the worker's child processes, which do not share
the test process's memory). The variable holds comma-separated importable module names; each
module's ``register()`` function, if it has one, is called once and adds its entries.
"""

from __future__ import annotations

import importlib
import os

from recsys_core.errors import ConfigError

ENV_PLUGINS = "RECSYS_EXPLORER_PLUGINS"
_loaded: set[str] = set()


def load_plugins() -> list[str]:
    """Import the modules named in ``$RECSYS_EXPLORER_PLUGINS`` (once each); return their names."""
    names = [n.strip() for n in os.environ.get(ENV_PLUGINS, "").split(",") if n.strip()]
    for name in names:
        if name in _loaded:
            continue
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            raise ConfigError(
                f"{ENV_PLUGINS}: cannot import plugin module {name!r} ({error}); "
                "fix the name or put its folder on PYTHONPATH"
            ) from None
        register = getattr(module, "register", None)
        if callable(register):
            register()
        _loaded.add(name)
    return names
