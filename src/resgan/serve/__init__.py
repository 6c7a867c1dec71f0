"""``resgan serve``: an HTTP API (FastAPI) and an offline web page for restoration and generation."""
