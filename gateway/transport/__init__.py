"""What carries bytes to and from the gateway, knowing nothing of OTLP: HTTP/2 framing and HPACK,
unary gRPC (server and client) on it, gRPC status codes, content codings, TLS settings, and where the
aiohttp servers listen. Receivers and exporters build on it; it imports nothing else of the gateway."""
