//! Route table (host, method, path prefix, regex pattern, priority) behind an atomic snapshot, and the Router service that dispatches to one service per route
