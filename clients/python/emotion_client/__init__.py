"""Client for the speech emotion service.

The generated stubs live in :mod:`emotion_client.v1` (API version ``emotion.v1``).
"""

API_VERSION = "emotion.v1"
SERVICE_NAME = "emotion.v1.EmotionService"

__all__ = ["API_VERSION", "SERVICE_NAME"]
