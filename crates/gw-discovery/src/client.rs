//! The small HTTP/1.1 client used for health checks and Consul (pooled, plain HTTP).

use std::time::Duration;

use bytes::Bytes;
use http::header::USER_AGENT;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const AGENT: &str = concat!("rust-api-gateway/", env!("CARGO_PKG_VERSION"));

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("invalid URL {0}")]
    Url(String),
    #[error("request failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    #[error("reading the body failed: {0}")]
    Body(#[from] hyper::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    inner: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpClient {
    pub(crate) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(4)
            .build(connector);
        HttpClient { inner }
    }

    fn request(&self, url: &str) -> Result<Request<Empty<Bytes>>, FetchError> {
        Request::get(url)
            .header(USER_AGENT, HeaderValue::from_static(AGENT))
            .body(Empty::new())
            .map_err(|_| FetchError::Url(url.to_owned()))
    }

    async fn send(&self, url: &str) -> Result<Response<Incoming>, FetchError> {
        Ok(self.inner.request(self.request(url)?).await?)
    }

    /// `GET url` within `timeout`: the status once the whole body was read (and dropped).
    pub(crate) async fn status(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<StatusCode, FetchError> {
        let fetch = async {
            let res = self.send(url).await?;
            let status = res.status();
            let mut body = res.into_body();
            while let Some(frame) = body.frame().await {
                frame?;
            }
            Ok(status)
        };
        tokio::time::timeout(timeout, fetch)
            .await
            .unwrap_or(Err(FetchError::Timeout(timeout)))
    }

    /// `GET url` within `timeout`: status, headers and the whole body.
    pub(crate) async fn get(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<(http::response::Parts, Bytes), FetchError> {
        let fetch = async {
            let res = self.send(url).await?;
            let (parts, body) = res.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok((parts, body))
        };
        tokio::time::timeout(timeout, fetch)
            .await
            .unwrap_or(Err(FetchError::Timeout(timeout)))
    }
}
