"""The callback path: payload, authentication, delivery with retries, and the outbox."""
