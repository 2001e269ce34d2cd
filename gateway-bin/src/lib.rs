//! The gateway: configuration, assembly of the per-route stacks, listeners, reload, shutdown.
//!
//! Its files, by role:
//! - `server.rs`: [`Gateway`]: start (state, tasks, listeners), reload, shutdown.
//! - `assemble.rs`: the request path, top to bottom: per connection, the edge layers, the
//!   router, each route's stack (read this one to follow a request).
//! - `listener/`: accept loop, connection limit, sniffing, TLS, connection deadlines, hyper
//!   glue; `listener/http1/`: the gateway's own plain HTTP/1.1 server loop.
//! - `state/`: the live [`App`] snapshot, reload, the writers' lock over routes and instances.
//! - `tasks.rs`: every background task, started by [`Gateway::start`].
//! - `sync.rs`: the shared store (Redis) for many nodes; `store.rs`: `[store]` and the pool.
//! - `control.rs`: the admin API over the state; `config.rs`: the configuration.
//!
//! The `gateway` binary is a thin shell over this library; the integration tests and
//! `cargo xtask demo` start the same [`Gateway`] in-process.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use gateway_bin::{Config, Gateway};
//!
//! let config = Config::from_toml_str(r#"
//!     [server]
//!     listen = "127.0.0.1:0"
//!     [admin]
//!     listen = "127.0.0.1:0"
//!     [services.echo]
//!     instances = [{ id = "e1", host = "127.0.0.1", port = 3000 }]
//!     [[routes]]
//!     id = "echo"
//!     path = "/echo"
//!     service = "echo"
//! "#)?;
//! let gateway = Gateway::start(config, None).await?;
//! println!("proxy on {}", gateway.proxy_addr());
//! gateway.shutdown().await;
//! # Ok(()) }
//! ```

mod assemble;
pub mod config;
mod control;
mod listener;
pub mod logging;
mod server;
mod state;
pub mod store;
mod sync;
mod tasks;

pub use config::{Config, ConfigError, ConfigErrors};
pub use control::Control;
pub use server::{Gateway, StartError};
pub use state::App;

// For the HTTP/1.1 benchmark (`benches/h1.rs`); not part of the API.
#[doc(hidden)]
pub use listener::serve_plain as bench_serve_h1;
