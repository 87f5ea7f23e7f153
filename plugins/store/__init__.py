"""The results store: SQLAlchemy tables and the repository the ``store`` plugin and ``emotion report`` use."""

from emotion_service.plugins.store.repository import ResultStore, StoreError

__all__ = ["ResultStore", "StoreError"]
