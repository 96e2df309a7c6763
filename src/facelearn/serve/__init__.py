"""``facelearn serve``: the Recognizer and gallery behind a REST API (FastAPI on uvicorn)."""
