"""Push job status updates from Redis to WebSocket clients through Django Channels."""
