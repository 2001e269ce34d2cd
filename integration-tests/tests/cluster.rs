//! Several gateway nodes sharing one Redis (`store.backend = "redis"`): admin changes reach
//! every node, `?wait=all`, a late node, a restart of every node; and the memory backend,
//! whose admin changes stay on one node. Each test has its own key prefix.

use std::time::Duration;

use integration_tests::{eventually, redis, TestGateway, Upstream};
use serde_json::{json, Value};

/// Bound on "reaches every node within one second" (issue 4).
const SPREAD: Duration = Duration::from_secs(1);

/// A node on the shared Redis under `prefix`, with service `cl` over `up` and a file route
/// `/base`.
async fn node(prefix: &str, up: &Upstream) -> TestGateway {
    TestGateway::builder()
        .raw(&format!(
            "[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"",
            redis::shared_url()
        ))
        .service("cl", &[up])
        .route("id = \"base\"\npath = \"/base\"\nservice = \"cl\"")
        .start()
        .await
}

async fn memory_node(up: &Upstream) -> TestGateway {
    TestGateway::builder()
        .service("cl", &[up])
        .route("id = \"base\"\npath = \"/base\"\nservice = \"cl\"")
        .start()
        .await
}

async fn status(gw: &TestGateway, path: &str) -> u16 {
    gw.get(path).await.status().as_u16()
}

async fn serves(gw: &TestGateway, path: &str, want: u16) -> bool {
    eventually(SPREAD, || async { status(gw, path).await == want }).await
}

async fn config_version(gw: &TestGateway) -> u64 {
    gw.admin(reqwest::Method::GET, "/admin/health", None)
        .await
        .1["config_version"]
        .as_u64()
        .expect("config_version")
}

fn dyn_route() -> Value {
    json!({"id": "dyn", "path": "/dyn", "service": "cl", "methods": ["GET"]})
}

/// Waits until `n` nodes report their version in the shared heartbeat hash, i.e. each has
/// finished its first load of the shared state. Before that a node is not counted by
/// `?wait=all`. Readiness only; not what the tests assert.
async fn wait_nodes(prefix: &str, n: usize) {
    let pool = redis::pool(&redis::shared_url());
    let key = format!("{prefix}gw:nodes");
    let ok = eventually(Duration::from_secs(5), || {
        let pool = pool.clone();
        let key = key.clone();
        async move {
            let Ok(mut conn) = pool.get().await else {
                return false;
            };
            let len: Result<usize, _> = deadpool_redis::redis::cmd("HLEN")
                .arg(&key)
                .query_async(&mut conn)
                .await;
            len.is_ok_and(|l| l >= n)
        }
    })
    .await;
    assert!(ok, "{n} nodes heartbeat under {prefix}");
}

#[tokio::test]
async fn an_admin_route_reaches_every_node_and_its_deletion_too() {
    let prefix = redis::unique_prefix("cluster-spread");
    let up = Upstream::echo("cl-1").await;
    let a = node(&prefix, &up).await;
    let b = node(&prefix, &up).await;
    let c = node(&prefix, &up).await;
    for n in [&a, &b, &c] {
        assert_eq!(status(n, "/dyn/x").await, 404);
        assert_eq!(status(n, "/base/x").await, 200);
    }
    wait_nodes(&prefix, 3).await;

    let (s, body) = a
        .admin(reqwest::Method::POST, "/admin/routes", Some(&dyn_route()))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["message"], "Route added");
    assert_eq!(
        status(&a, "/dyn/x").await,
        200,
        "the writing node serves at once"
    );
    assert!(serves(&b, "/dyn/x", 200).await, "node B gets the route");
    assert!(serves(&c, "/dyn/x", 200).await, "node C gets the route");
    let (_, got) = c
        .admin(reqwest::Method::GET, "/admin/routes/dyn", None)
        .await;
    assert_eq!(got["route"]["path"], "/dyn", "{got}");

    // Every node runs the same configuration version.
    let va = config_version(&a).await;
    assert!(va > 0, "an admin change bumps the version");
    assert!(
        eventually(SPREAD, || async {
            config_version(&b).await == va && config_version(&c).await == va
        })
        .await,
        "config_version equal on all nodes: {va} vs {} and {}",
        config_version(&b).await,
        config_version(&c).await
    );

    // A node started after the change has it.
    let d = node(&prefix, &up).await;
    assert!(
        serves(&d, "/dyn/x", 200).await,
        "a later node loads the route"
    );
    assert!(
        eventually(SPREAD, || async { config_version(&d).await == va }).await,
        "a later node runs the current version"
    );

    // A deletion on A disappears everywhere.
    let (s, body) = a
        .admin(reqwest::Method::DELETE, "/admin/routes/dyn", None)
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["message"], "Route removed");
    assert_eq!(status(&a, "/dyn/x").await, 404);
    assert!(serves(&b, "/dyn/x", 404).await, "deleted on B");
    assert!(serves(&c, "/dyn/x", 404).await, "deleted on C");
    assert!(serves(&d, "/dyn/x", 404).await, "deleted on D");
    for n in [&a, &b, &c, &d] {
        assert_eq!(status(n, "/base/x").await, 200, "file routes stay");
    }
}

#[tokio::test]
async fn an_instance_registered_on_one_node_is_used_by_another() {
    let prefix = redis::unique_prefix("cluster-instance");
    let one = Upstream::echo("cli-1").await;
    let two = Upstream::echo("cli-2").await;
    let a = node(&prefix, &one).await;
    let b = node(&prefix, &one).await;
    wait_nodes(&prefix, 2).await;

    let inst = json!({"id": "cli-2", "host": "127.0.0.1", "port": two.addr.port()});
    let (s, body) = a
        .admin(
            reqwest::Method::POST,
            "/admin/services/cl/instances",
            Some(&inst),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["message"], "Service instance registered");

    let reached = eventually(SPREAD, || async {
        b.get("/base/x")
            .await
            .json::<Value>()
            .await
            .ok()
            .is_some_and(|v| v["instance"] == "cli-2")
    })
    .await;
    assert!(
        reached,
        "node B sends traffic to the instance registered on A"
    );
    let (_, d) = b
        .admin(reqwest::Method::GET, "/admin/services/cl", None)
        .await;
    assert_eq!(d["instances"].as_array().map(Vec::len), Some(2), "{d}");

    // Deregistered on A: B stops using it.
    let (s, _) = a
        .admin(
            reqwest::Method::DELETE,
            "/admin/services/cl/instances/cli-2",
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        eventually(SPREAD, || async {
            b.admin(reqwest::Method::GET, "/admin/services/cl", None)
                .await
                .1["instances"]
                .as_array()
                .map(Vec::len)
                == Some(1)
        })
        .await,
        "node B drops the deregistered instance"
    );
    let hits = two.hits();
    for _ in 0..4 {
        assert_eq!(status(&b, "/base/x").await, 200);
    }
    assert_eq!(two.hits(), hits);
}

#[tokio::test]
async fn wait_all_answers_once_every_node_runs_the_change() {
    let prefix = redis::unique_prefix("cluster-wait");
    let up = Upstream::echo("clw-1").await;
    let a = node(&prefix, &up).await;
    let b = node(&prefix, &up).await;
    let c = node(&prefix, &up).await;
    wait_nodes(&prefix, 3).await;

    let (s, body) = a
        .admin(
            reqwest::Method::POST,
            "/admin/routes?wait=all",
            Some(&dyn_route()),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["message"], "Route added");
    // No polling: every node serves the route as soon as the answer is in.
    for (name, n) in [("A", &a), ("B", &b), ("C", &c)] {
        assert_eq!(
            status(n, "/dyn/x").await,
            200,
            "node {name} after ?wait=all"
        );
    }
    let v = config_version(&a).await;
    assert_eq!(config_version(&b).await, v);
    assert_eq!(config_version(&c).await, v);

    let (s, _) = b
        .admin(reqwest::Method::DELETE, "/admin/routes/dyn?wait=all", None)
        .await;
    assert_eq!(s, 200);
    for (name, n) in [("A", &a), ("B", &b), ("C", &c)] {
        assert_eq!(
            status(n, "/dyn/x").await,
            404,
            "node {name} after DELETE ?wait=all"
        );
    }
}

#[tokio::test]
async fn changes_survive_a_restart_of_every_node() {
    let prefix = redis::unique_prefix("cluster-restart");
    let one = Upstream::echo("clr-1").await;
    let two = Upstream::echo("clr-2").await;
    let a = node(&prefix, &one).await;
    let b = node(&prefix, &one).await;
    let (s, _) = a
        .admin(reqwest::Method::POST, "/admin/routes", Some(&dyn_route()))
        .await;
    assert_eq!(s, 201);
    let inst = json!({"id": "clr-2", "host": "127.0.0.1", "port": two.addr.port()});
    let (s, _) = a
        .admin(
            reqwest::Method::POST,
            "/admin/services/cl/instances",
            Some(&inst),
        )
        .await;
    assert_eq!(s, 201);
    assert!(serves(&b, "/dyn/x", 200).await);
    let version = config_version(&a).await;

    a.gateway.shutdown().await;
    b.gateway.shutdown().await;

    let c = node(&prefix, &one).await;
    let d = node(&prefix, &one).await;
    for (name, n) in [("C", &c), ("D", &d)] {
        assert!(
            serves(n, "/dyn/x", 200).await,
            "node {name} has the admin route after a restart"
        );
        assert!(
            eventually(SPREAD, || async {
                n.admin(reqwest::Method::GET, "/admin/services/cl", None)
                    .await
                    .1["instances"]
                    .as_array()
                    .map(Vec::len)
                    == Some(2)
            })
            .await,
            "node {name} has the admin instance after a restart"
        );
        assert_eq!(config_version(n).await, version);
    }
    let (_, routes) = c.admin(reqwest::Method::GET, "/admin/routes", None).await;
    let ids: Vec<&str> = routes["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["base", "dyn"]);
}

#[tokio::test]
async fn with_the_memory_backend_a_change_stays_on_its_node() {
    let up = Upstream::echo("clm-1").await;
    let a = memory_node(&up).await;
    let b = memory_node(&up).await;
    let (s, _) = a
        .admin(reqwest::Method::POST, "/admin/routes", Some(&dyn_route()))
        .await;
    assert_eq!(s, 201);
    assert_eq!(status(&a, "/dyn/x").await, 200);
    assert!(
        !eventually(Duration::from_millis(1500), || async {
            status(&b, "/dyn/x").await != 404
        })
        .await,
        "documented: without a shared store an admin change stays on one node"
    );
    let (s, _) = b
        .admin(reqwest::Method::GET, "/admin/routes/dyn", None)
        .await;
    assert_eq!(s, 404);
}

/// Regression: a node's background refresh used to load the shared state, then apply it
/// without checking that no local admin write happened in between, so a write made right
/// after start could be overwritten on the writing node by an older snapshot for good. The
/// refresh now holds the writers' lock from the load to the apply.
#[tokio::test]
async fn a_write_right_after_start_is_not_lost_on_the_writing_node() {
    let up = Upstream::echo("clx-1").await;
    for round in 0..30 {
        let prefix = redis::unique_prefix("cluster-early-write");
        let a = node(&prefix, &up).await;
        let (s, body) = a
            .admin(reqwest::Method::POST, "/admin/routes", Some(&dyn_route()))
            .await;
        assert_eq!(s, 201, "{body}");
        assert!(
            serves(&a, "/dyn/x", 200).await,
            "round {round}: the writing node lost the route it answered 201 for"
        );
        a.gateway.shutdown().await;
    }
}

/// With the shared store unreachable, route writes are refused with 503 and change nothing.
#[tokio::test]
async fn route_writes_with_the_store_down_are_503_and_change_nothing() {
    let up = Upstream::echo("cl-down").await;
    let dead = integration_tests::refused_addr().await;
    let gw = TestGateway::builder()
        .raw(&format!(
            "[store]\nbackend = \"redis\"\nredis_url = \"redis://{dead}\"\ntimeout_ms = 200"
        ))
        .service("cl", &[&up])
        .route("id = \"base\"\npath = \"/base\"\nservice = \"cl\"")
        .start()
        .await;
    let (s, body) = gw
        .admin(reqwest::Method::POST, "/admin/routes", Some(&dyn_route()))
        .await;
    assert_eq!(s, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Store unavailable"),
        "{body}"
    );
    assert_eq!(
        status(&gw, "/dyn/x").await,
        404,
        "the refused route must not serve"
    );
    let (s, _) = gw
        .admin(reqwest::Method::DELETE, "/admin/routes/base", None)
        .await;
    assert_eq!(s, 503);
    assert_eq!(
        status(&gw, "/base/x").await,
        200,
        "the route it failed to delete still serves"
    );
}
