"""The router process: authentication, validation, locality-aware routing across cells, listing."""
