//! Test support: upstream servers on ephemeral ports and the gateway in-process.
