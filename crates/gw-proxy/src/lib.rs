//! Upstream forwarding: pooled hyper clients, HTTP/1.1 and HTTP/2, gRPC, WebSocket upgrades, load balancing, retries with a budget, timeouts and forwarded headers
