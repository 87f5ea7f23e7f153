"""Speech emotion recognition service: one import root for serving, plugins and training.

``emotion_service.server`` (folder ``server/``), ``emotion_service.plugins`` (``plugins/``) and
``emotion_service.tuning`` (``tuning/``) are the layers; the modules directly in this package
(audio, settings, architectures, html, logging, paths) are shared by all of them, and
``emotion_service.cli`` sits on top. docs/architecture.md draws the map.
"""
