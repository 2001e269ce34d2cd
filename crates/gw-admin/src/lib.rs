//! The admin HTTP API (routes, metrics, health) as an axum Router over a ControlPlane trait, behind a CIDR allow list and a bearer token
