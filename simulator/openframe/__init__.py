"""OpenFrame: devices, alerts and security events (REST under `/v1`, WebSocket `/v1/ws`)."""
