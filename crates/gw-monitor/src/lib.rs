//! Request ids, Prometheus metrics with pre-built handles and a JSON access log written off the request path, as tower layers
