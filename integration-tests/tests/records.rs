//! Instance records from outside the configuration file are validated like admin input: an
//! instance weight out of range is refused by the admin API (400) and skipped when read from
//! the shared store, and the gateway keeps serving either way.

use std::time::Duration;

use integration_tests::raw::first_response;
use integration_tests::{eventually, redis, TestGateway, Upstream};

/// Generous bound on waits for a condition (never asserted as a duration).
const WAIT: Duration = Duration::from_secs(10);

/// Writes `request` on a new connection to `addr` and reads the answer (the request says
/// `Connection: close`); returns the status and the body.
async fn raw(addr: std::net::SocketAddr, request: String) -> (u16, String) {
    let res = first_response(addr, request.as_bytes(), WAIT).await;
    (res.status, res.text())
}

async fn service_instances(gw: &TestGateway, name: &str) -> Vec<String> {
    let (_, body) = gw.admin_get(&format!("/admin/services/{name}")).await;
    body["instances"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn admin_refuses_an_instance_weight_out_of_range_and_keeps_serving() {
    let up = Upstream::echo("rec-1").await;
    let gw = TestGateway::builder()
        .service("rec", &[&up])
        .route("id = \"base\"\npath = \"/base\"\nservice = \"rec\"")
        .start()
        .await;
    let admin = gw.gateway.admin_addr();
    for weight in ["4294967295", "10001", "0"] {
        let body = format!(
            r#"{{"id": "huge", "host": "127.0.0.1", "port": {}, "weight": {weight}}}"#,
            up.addr.port()
        );
        let request = format!(
            "POST /admin/services/rec/instances HTTP/1.1\r\nHost: {admin}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let (status, answer) = raw(admin, request).await;
        assert_eq!(status, 400, "weight {weight}: {answer}");
        assert!(answer.contains("weight"), "weight {weight}: {answer}");
    }
    assert_eq!(service_instances(&gw, "rec").await, ["rec-1"]);
    for _ in 0..3 {
        assert_eq!(gw.get("/base/x").await.status(), 200);
    }

    // The upper bound itself is accepted.
    let body = format!(
        r#"{{"id": "heavy", "host": "127.0.0.1", "port": {}, "weight": 10000}}"#,
        up.addr.port()
    );
    let request = format!(
        "POST /admin/services/rec/instances HTTP/1.1\r\nHost: {admin}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, answer) = raw(admin, request).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(gw.get("/base/x").await.status(), 200);
}

#[tokio::test]
async fn a_poisoned_shared_instance_record_is_skipped_and_the_node_serves() {
    let prefix = redis::unique_prefix("records-poison");
    let url = redis::shared_url();
    let static_up = Upstream::echo("recp-1").await;
    let shared_up = Upstream::echo("recp-2").await;

    // Records as another node (or a hand edit) left them: one valid, two poisoned.
    let pool = redis::pool(&url);
    let mut conn = pool.get().await.expect("redis connection");
    let good = format!(
        r#"{{"id":"good","host":"127.0.0.1","port":{},"weight":100}}"#,
        shared_up.addr.port()
    );
    let huge = format!(
        r#"{{"id":"huge","host":"127.0.0.1","port":{},"weight":4294967295}}"#,
        shared_up.addr.port()
    );
    let bad_host = r#"{"id":"bad-host","host":"a b","port":1,"weight":1}"#;
    let _: () = deadpool_redis::redis::cmd("HSET")
        .arg(format!("{prefix}gw:instances"))
        .arg("recp\ngood")
        .arg(&good)
        .arg("recp\nhuge")
        .arg(&huge)
        .arg("recp\nbad-host")
        .arg(bad_host)
        .query_async(&mut conn)
        .await
        .expect("HSET");
    let _: () = deadpool_redis::redis::cmd("SET")
        .arg(format!("{prefix}gw:version"))
        .arg(3)
        .query_async(&mut conn)
        .await
        .expect("SET");

    let gw = TestGateway::builder()
        .raw(&format!(
            "[store]\nbackend = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"{prefix}\""
        ))
        .service("recp", &[&static_up])
        .route("id = \"base\"\npath = \"/base\"\nservice = \"recp\"")
        .start()
        .await;

    let loaded = eventually(WAIT, || async {
        service_instances(&gw, "recp")
            .await
            .contains(&"good".to_owned())
    })
    .await;
    assert!(loaded, "the valid shared record is applied");
    let mut ids = service_instances(&gw, "recp").await;
    ids.sort();
    assert_eq!(ids, ["good", "recp-1"], "the poisoned records are skipped");

    let before = shared_up.hits();
    for _ in 0..4 {
        assert_eq!(gw.get("/base/x").await.status(), 200);
    }
    assert!(
        shared_up.hits() > before,
        "the valid shared instance serves"
    );

    let _: () = deadpool_redis::redis::cmd("DEL")
        .arg(format!("{prefix}gw:instances"))
        .arg(format!("{prefix}gw:version"))
        .arg(format!("{prefix}gw:nodes"))
        .query_async(&mut conn)
        .await
        .unwrap_or(());
}
