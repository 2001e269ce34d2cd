//! `cargo xtask demo [--redis URL] [--nodes N]`: its options, the demo services (echo servers
//! on the instances `config/demo.toml` names), the gateway nodes in-process, and the banner of
//! commands to try.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::Request;
use axum::Json;
use gateway_bin::{Config, Gateway};
use serde_json::{json, Value};

use crate::root;

/// `cargo xtask demo [--redis URL] [--nodes N]`.
#[derive(Clone, Debug, Default)]
pub(crate) struct DemoOptions {
    /// Shared store: `store.backend = "redis"` with this URL.
    redis: Option<String>,
    /// Gateway nodes (1 unless given).
    nodes: u16,
}

/// Key prefix of the demo's Redis keys, so that they stay apart from anything else there.
const DEMO_KEY_PREFIX: &str = "demo:";
/// Most nodes `--nodes` accepts (ports 8080.. and 9901.. must stay apart).
const MAX_NODES: u16 = 5;

impl DemoOptions {
    /// The options from the arguments after `demo`; `Err` says what is wrong with them.
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = DemoOptions {
            redis: None,
            nodes: 1,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match name {
                "--redis" => options.redis = Some(value()?),
                "--nodes" => {
                    let v = value()?;
                    options.nodes = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_NODES).contains(n))
                        .ok_or_else(|| {
                            format!("--nodes must be a number from 1 to {MAX_NODES}, got {v:?}")
                        })?;
                }
                other => return Err(format!("unknown demo option {other:?}")),
            }
        }
        if options.nodes > 1 && options.redis.is_none() {
            return Err(
                "--nodes above 1 needs --redis URL: the nodes share state through Redis".into(),
            );
        }
        Ok(options)
    }
}

/// `cargo xtask demo`: runs the demo on a runtime of its own until Ctrl-C.
pub(crate) fn demo(options: DemoOptions) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xtask: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_demo(options))
}

/// One demo service instance: who it is and where it listens.
#[derive(Clone, Debug)]
struct DemoInstance {
    /// Service name in `config/demo.toml`.
    service: String,
    /// Instance id.
    instance: String,
    /// Port on 127.0.0.1.
    port: u16,
}

/// `host:port` of a `redis://` URL, for a reachability check (`None` when it has no host).
fn redis_addr(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit('@').next()?;
    if host_port.is_empty() {
        return None;
    }
    Some(if host_port.contains(':') && !host_port.ends_with(']') {
        host_port.to_owned()
    } else {
        format!("{host_port}:6379")
    })
}

/// `addr` with its port moved up by `by` (node k of the demo).
fn shifted(addr: SocketAddr, by: u16) -> SocketAddr {
    SocketAddr::new(addr.ip(), addr.port().saturating_add(by))
}

/// Starts the demo services and the gateway nodes, prints the banner, waits for Ctrl-C and
/// stops everything.
async fn run_demo(options: DemoOptions) -> ExitCode {
    let path = root().join("config/demo.toml");
    let mut config = match Config::load(Some(&path)) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("xtask: {} is invalid:", path.display());
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    gateway_bin::logging::init(&config.log.level);

    if let Some(url) = &options.redis {
        config.store.backend = gateway_bin::store::Backend::Redis;
        config.store.redis_url = url.clone();
        config.store.key_prefix = DEMO_KEY_PREFIX.to_owned();
        match redis_addr(url) {
            Some(addr) => {
                let reachable = tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio::net::TcpStream::connect(addr.as_str()),
                )
                .await
                .is_ok_and(|r| r.is_ok());
                if !reachable {
                    eprintln!(
                        "xtask: warning: Redis at {addr} does not answer; the gateway starts \
                         anyway and connects when it can (start one with `redis-server`)"
                    );
                }
            }
            None => {
                eprintln!("xtask: --redis {url:?} is not a redis:// URL");
                return ExitCode::FAILURE;
            }
        }
    }

    // The demo services are the instances that demo.toml names on this machine.
    let instances: Vec<DemoInstance> = config
        .services
        .iter()
        .flat_map(|(service, sc)| {
            sc.instances
                .iter()
                .filter(|i| matches!(i.host.as_str(), "127.0.0.1" | "localhost"))
                .map(move |i| DemoInstance {
                    service: service.clone(),
                    instance: i.id.clone(),
                    port: i.port,
                })
        })
        .collect();

    let mut servers = Vec::new();
    for inst in &instances {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", inst.port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "xtask: cannot listen on 127.0.0.1:{port} for demo service {id}: {e}; \
                     `ss -ltnp | grep :{port}` shows who holds the port",
                    port = inst.port,
                    id = inst.instance,
                );
                return ExitCode::FAILURE;
            }
        };
        let app = axum::Router::new().fallback({
            let inst = inst.clone();
            move |req: Request| echo(inst.clone(), req)
        });
        servers.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("xtask: demo service stopped: {e}");
            }
        }));
    }

    let mut gateways: Vec<Gateway> = Vec::new();
    for k in 0..options.nodes {
        let mut node_config = config.clone();
        node_config.server.listen = shifted(config.server.listen, k);
        node_config.admin.listen = shifted(config.admin.listen, k);
        // Node 1 reloads from the file; the others run with their changed ports only.
        let node_path = (k == 0 && options.redis.is_none()).then(|| path.clone());
        match Gateway::start(node_config, node_path).await {
            Ok(g) => gateways.push(g),
            Err(e) => {
                eprintln!("xtask: cannot start gateway node {}: {e}", k + 1);
                if matches!(e, gateway_bin::StartError::Bind { .. }) {
                    eprintln!(
                        "xtask: that port is busy (another gateway or demo still running?); \
                         free it or change {}",
                        path.display()
                    );
                }
                for g in gateways {
                    g.shutdown().await;
                }
                for s in &servers {
                    s.abort();
                }
                return ExitCode::FAILURE;
            }
        }
    }

    let nodes: Vec<(SocketAddr, SocketAddr)> = gateways
        .iter()
        .map(|g| (g.proxy_addr(), g.admin_addr()))
        .collect();
    print_banner(&instances, &nodes, options.redis.as_deref());

    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("xtask: cannot wait for Ctrl-C: {e}");
    }
    eprintln!("\nxtask: stopping the gateway and the demo services");
    for g in gateways {
        g.shutdown().await;
    }
    for s in servers {
        s.abort();
        let _ = s.await;
    }
    eprintln!("xtask: stopped");
    ExitCode::SUCCESS
}

/// The demo services' one handler: JSON naming the instance and echoing what it was sent.
async fn echo(inst: DemoInstance, req: Request) -> Json<Value> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut headers = BTreeMap::new();
    for name in [
        "x-request-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-gateway-version",
        "x-user-id",
        "x-user-role",
    ] {
        let value = parts.headers.get(name).and_then(|v| v.to_str().ok());
        headers.insert(name.to_owned(), json!(value));
    }
    for (name, value) in &parts.headers {
        if name.as_str().starts_with("x-demo-") {
            headers.insert(name.as_str().to_owned(), json!(value.to_str().ok()));
        }
    }
    Json(json!({
        "service": inst.service,
        "instance": inst.instance,
        "port": inst.port,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
}

/// Prints where everything listens and the commands to try (more of them with many nodes).
fn print_banner(
    instances: &[DemoInstance],
    nodes: &[(SocketAddr, SocketAddr)],
    redis: Option<&str>,
) {
    let (p, a) = nodes[0];
    let mut out = String::new();
    out.push_str("\n=== gateway demo ===\n");
    for i in instances {
        out.push_str(&format!(
            "  demo service {:<18} {:<16} on 127.0.0.1:{}\n",
            i.instance, i.service, i.port
        ));
    }
    for (k, (proxy, admin)) in nodes.iter().enumerate() {
        out.push_str(&format!(
            "  gateway node {} proxy on http://{proxy}, admin API on http://{admin} (config/demo.toml)\n",
            k + 1
        ));
    }
    match redis {
        Some(url) => out.push_str(&format!(
            "  store: Redis {url}, keys prefixed \"{DEMO_KEY_PREFIX}\" (routes added here survive restarts of the demo)\n"
        )),
        None => out.push_str("  store: memory (admin changes last until the demo stops)\n"),
    }
    out.push_str("  access log: one JSON line per request below\n\n");
    out.push_str("Try (in another terminal):\n\n");
    let mut cmds: Vec<(&str, String)> = vec![
        (
            "a user, twice: round robin answers from user-service-1, then user-service-2",
            format!("curl -s http://{p}/api/v1/users/42\ncurl -s http://{p}/api/v1/users/42"),
        ),
        (
            "headers: your X-Request-ID is kept, a spoofed X-User-ID never reaches the service; \
             the route adds X-Demo-Route to the answer",
            format!(
                "curl -si -H 'X-Request-ID: demo-1' -H 'X-User-ID: spoofed' http://{p}/api/v1/users/42"
            ),
        ),
        (
            "an order: path route with strip_prefix, the service sees /7?expand=items (least_conn)",
            format!("curl -s 'http://{p}/api/v1/orders/7?expand=items'"),
        ),
        (
            "a payment (POST is allowed on this route)",
            format!(
                "curl -s -X POST -H 'Content-Type: application/json' -d '{{\"amount\": 42}}' http://{p}/api/v1/payments"
            ),
        ),
        (
            "405: DELETE is not in the payment route's methods (see the Allow header)",
            format!("curl -si -X DELETE http://{p}/api/v1/payments/1"),
        ),
        (
            "404: no route matches",
            format!("curl -si http://{p}/api/v2/nothing"),
        ),
        (
            "the gateway's own health check",
            format!("curl -s http://{p}/health"),
        ),
        (
            "JWT: mint a token for alice (role user) through the admin API",
            format!(
                "TOKEN=$(curl -s -X POST -H 'Content-Type: application/json' -d '{{\"user_id\": \"alice\", \"username\": \"alice\", \"role\": \"user\"}}' http://{a}/admin/tokens | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/')\necho \"$TOKEN\""
            ),
        ),
        (
            "401: the account route needs a token",
            format!("curl -si http://{p}/api/v1/account/profile"),
        ),
        (
            "200 with the token: the user service sees x-user-id alice and x-user-role user",
            format!("curl -s -H \"Authorization: Bearer $TOKEN\" http://{p}/api/v1/account/profile"),
        ),
        (
            "revoke the token: the same call now answers 401 Token has been revoked",
            format!(
                "curl -s -X POST -H 'Content-Type: application/json' -d \"{{\\\"token\\\": \\\"$TOKEN\\\"}}\" http://{a}/admin/tokens/revoke\ncurl -s -H \"Authorization: Bearer $TOKEN\" http://{p}/api/v1/account/profile"
            ),
        ),
        (
            "429: the payment route allows 5 requests a minute per client (the POST above counted too)",
            format!(
                "for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}} ' http://{p}/api/v1/payments; done; echo\ncurl -si http://{p}/api/v1/payments | grep -i -e '^HTTP' -e '^x-ratelimit' -e '^retry-after' -e '^ratelimit' -e 'error'"
            ),
        ),
        (
            "admin: the rate limits and their busiest keys",
            format!("curl -s http://{a}/admin/rate-limits"),
        ),
        (
            "admin: one circuit breaker per service (closed while the services answer)",
            format!("curl -s http://{a}/admin/circuit-breakers"),
        ),
        (
            "admin: services, and the health-checked instances of one",
            format!("curl -s http://{a}/admin/services\ncurl -s http://{a}/admin/services/user_service"),
        ),
        (
            "admin: the route table",
            format!("curl -s http://{a}/admin/routes"),
        ),
        (
            "admin: add a route at runtime, then use it (the user service sees /7)",
            format!(
                "curl -s -X POST -H 'Content-Type: application/json' -d '{{\"id\": \"accounts\", \"path\": \"/accounts\", \"strip_prefix\": true, \"service\": \"user_service\"}}' http://{a}/admin/routes\ncurl -s http://{p}/accounts/7"
            ),
        ),
        (
            "metrics: JSON, and Prometheus text",
            format!("curl -s http://{a}/admin/metrics\ncurl -s http://{a}/metrics | grep '^gateway_requests_total'"),
        ),
    ];
    if let Some(&(p2, a2)) = nodes.get(1) {
        cmds.extend([
            (
                "many nodes as one: add a route on node 1; ?wait=all answers once every node runs it",
                format!(
                    "curl -s -X POST -H 'Content-Type: application/json' -d '{{\"id\": \"shared\", \"path\": \"/shared\", \"strip_prefix\": true, \"service\": \"order_service\"}}' 'http://{a}/admin/routes?wait=all'"
                ),
            ),
            (
                "... and it serves on node 2 (the order service sees /1); both nodes report the same config_version",
                format!(
                    "curl -s http://{p2}/shared/1\ncurl -s http://{a}/admin/health | grep -o '\"config_version\":[0-9]*'\ncurl -s http://{a2}/admin/health | grep -o '\"config_version\":[0-9]*'"
                ),
            ),
            (
                "an instance registered on node 2 shows on node 1",
                format!(
                    "curl -s -X POST -H 'Content-Type: application/json' -d '{{\"id\": \"order-service-3\", \"host\": \"127.0.0.1\", \"port\": 18012}}' 'http://{a2}/admin/services/order_service/instances?wait=all'\ncurl -s http://{a}/admin/services/order_service"
                ),
            ),
            (
                "remove both on node 1: node 2 answers 404 Route not found",
                format!(
                    "curl -s -X DELETE 'http://{a}/admin/services/order_service/instances/order-service-3?wait=all'\ncurl -s -X DELETE 'http://{a}/admin/routes/shared?wait=all'\ncurl -s http://{p2}/shared/1"
                ),
            ),
            (
                "rate limits count across nodes: 3 on node 1 + 3 on node 2, the 6th is 429 (wait a minute after the 429 demo above)",
                format!(
                    "for i in 1 2 3; do curl -s -o /dev/null -w '%{{http_code}} ' http://{p}/api/v1/payments; done; for i in 1 2 3; do curl -s -o /dev/null -w '%{{http_code}} ' http://{p2}/api/v1/payments; done; echo"
                ),
            ),
        ]);
    }
    for (what, cmd) in &cmds {
        out.push_str(&format!("  # {what}\n"));
        for line in cmd.lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out.push('\n');
    }
    out.push_str("Press Ctrl-C to stop.\n");
    print!("{out}");
    let _ = std::io::stdout().flush();
}
