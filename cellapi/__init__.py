"""The router side: the public Compute API, the operator Federation API, the client SDK and cellctl."""
