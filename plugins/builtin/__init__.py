"""The built-in plugins. Each is registered by an entry point of group ``emotion.plugins``
in ``pyproject.toml``, exactly as a third-party plugin is, and configured by its own
``[plugins.<name>]`` table and ``EMOTION_<NAME>_*`` variables (see ``docs/plugins.md``)."""
