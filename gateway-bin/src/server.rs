//! The [`Gateway`]: builds the live state and the request path (`assemble`), starts the
//! background tasks and the listeners (`listener`), reloads, and shuts down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gw_admin::{admin_router, AccessControl};
use gw_core::ConnInfo;
use gw_monitor::{AccessLog, Metrics};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::assemble;
use crate::config::{Config, ConfigErrors, ADMIN_MAX_CONNECTIONS};
use crate::control::Control;
use crate::listener::{bind, local, serve, tls_acceptor, HeadLimits};
use crate::state::App;
use crate::tasks;

/// Error starting the gateway.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// The access log file could not be opened.
    #[error("access log: {0}")]
    AccessLog(std::io::Error),
}

/// A gateway running on the current tokio runtime.
#[derive(Debug)]
pub struct Gateway {
    app: App,
    proxy_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    admin_addr: SocketAddr,
    config_path: Option<PathBuf>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl Gateway {
    /// Binds the listeners of `config` (port 0 picks a free port) and starts serving.
    /// `config_path` is what [`Gateway::reload_from_file`] re-reads.
    pub async fn start(
        config: Config,
        config_path: Option<PathBuf>,
    ) -> Result<Gateway, StartError> {
        config.validate()?;
        let metrics = Metrics::global();
        let app = App::new(config.clone(), metrics.clone()).await?;
        let access_log = match config.log.access_log.as_str() {
            "off" | "" => None,
            "stdout" => Some(AccessLog::stdout()),
            path => {
                Some(AccessLog::file(std::path::Path::new(path)).map_err(StartError::AccessLog)?)
            }
        };
        let edge = assemble::edge_service(&app, &metrics, access_log);

        let (stop, stop_rx) = watch::channel(false);
        // Health checks, Consul, breaker ticks, limiter sweeps, sync with other nodes.
        let mut tasks = tasks::spawn(&app, stop_rx.clone());
        let shutdown_timeout = Duration::from_secs(config.server.shutdown_timeout_secs);
        let idle_timeout = Duration::from_secs(config.server.idle_timeout_secs);
        let limits = HeadLimits {
            line: config.server.max_request_line_bytes,
            head: config.server.max_header_bytes,
            headers: config.server.max_headers,
        };

        // Per connection: the function from request to answer (see `assemble`).
        let make_proxy = {
            let app = app.clone();
            move |conn: ConnInfo| assemble::proxy_connection(&app, &edge, conn)
        };

        let proxy_listener = bind(config.server.listen).await?;
        let proxy_addr = local(&proxy_listener, config.server.listen);
        tasks.push(tokio::spawn(serve(
            proxy_listener,
            None,
            make_proxy.clone(),
            stop_rx.clone(),
            shutdown_timeout,
            idle_timeout,
            limits,
            config.server.max_connections,
        )));

        let mut tls_addr = None;
        if let Some(tls) = &config.server.tls {
            let acceptor = tls_acceptor(&tls.cert, &tls.key)?;
            let listener = bind(tls.listen).await?;
            tls_addr = Some(local(&listener, tls.listen));
            tasks.push(tokio::spawn(serve(
                listener,
                Some(acceptor),
                make_proxy.clone(),
                stop_rx.clone(),
                shutdown_timeout,
                idle_timeout,
                limits,
                config.server.max_connections,
            )));
        }

        let admin_listener = bind(config.admin.listen).await?;
        let admin_addr = local(&admin_listener, config.admin.listen);
        let access = AccessControl {
            allow: config.admin.allow.clone(),
            token: config.admin.token.clone(),
            hosts: Some(config.admin.hosts(admin_addr)),
        };
        let admin = admin_router(Arc::new(Control::new(app.clone())), access);
        tasks.push(tokio::spawn(serve(
            admin_listener,
            None,
            move |conn: ConnInfo| assemble::admin_connection(&admin, conn),
            stop_rx,
            shutdown_timeout,
            idle_timeout,
            limits,
            config.server.max_connections.min(ADMIN_MAX_CONNECTIONS),
        )));

        tracing::info!(%proxy_addr, ?tls_addr, %admin_addr, version = gw_core::VERSION, "gateway listening");
        Ok(Gateway {
            app,
            proxy_addr,
            tls_addr,
            admin_addr,
            config_path,
            stop,
            tasks,
            shutdown_timeout,
        })
    }

    /// Address of the proxy listener.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    /// Address of the TLS listener, when configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Address of the admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The shared state.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Applies a new configuration; an invalid one is refused and the running one stays.
    pub async fn reload(&self, config: Config) -> Result<(), ConfigErrors> {
        self.app.reload(config).await
    }

    /// Re-reads the configuration file (with `GW_` overrides) and applies it.
    pub async fn reload_from_file(&self) -> Result<(), ConfigErrors> {
        let config = Config::load(self.config_path.as_deref())?;
        self.reload(config).await
    }

    /// Stops accepting, lets requests in flight finish (bounded by
    /// `server.shutdown_timeout_secs`), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let bound = self.shutdown_timeout + Duration::from_secs(1);
        for task in self.tasks {
            let _ = tokio::time::timeout(bound, task).await;
        }
    }
}
