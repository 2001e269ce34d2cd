//! The gateway library: configuration, assembly, listeners.
