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

mod assemble;
pub mod config;
mod control;
mod fast_h1;
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
