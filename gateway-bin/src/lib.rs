//! The gateway: configuration, assembly of the per-route stacks, listeners, reload, shutdown.
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

mod app;
pub mod config;
mod control;
mod fast_h1;
pub mod logging;
mod server;
pub mod store;
mod sync;

pub use app::App;
pub use config::{Config, ConfigError, ConfigErrors};
pub use control::Control;
pub use server::{Gateway, StartError};

// For the HTTP/1.1 benchmark (`benches/h1.rs`); not part of the API.
#[doc(hidden)]
pub use fast_h1::serve_plain as bench_serve_h1;
