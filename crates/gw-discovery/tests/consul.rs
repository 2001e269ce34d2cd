//! The Consul watcher against a small Consul (tests/support) with blocking queries.

mod support;

use std::sync::Arc;
use std::time::Duration;

use gw_discovery::{ConsulConfig, ConsulWatcher, Instance, Registry};
use support::{ConsulEntry, FakeConsul};
use test_support::{wait_until, Running};

const LIMIT: Duration = Duration::from_secs(10);

fn watch(consul: &FakeConsul, services: &[&str], registry: &Arc<Registry>) -> Running {
    let config = ConsulConfig {
        url: consul.url(),
        services: services.iter().map(|s| s.to_string()).collect(),
        wait_secs: 30,
    };
    assert!(config.validate().is_empty());
    let watcher = ConsulWatcher::new(config, registry.clone());
    Running::spawn(|stopped| watcher.run(stopped))
}

fn ids(r: &Registry, service: &str) -> Vec<String> {
    r.healthy(service).into_iter().map(|i| i.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_follow_the_catalog_within_a_second() {
    let consul = FakeConsul::start().await;
    let mut e1 = ConsulEntry::new("web-1", 8001);
    e1.meta.insert("version".into(), "2.0".into());
    e1.passing_weight = Some(5);
    consul.upsert("web", e1);
    let r = Registry::new();
    r.set_static(
        "web",
        vec![Instance::new("static-1", "127.0.0.1", 7000)],
        None,
    );
    let watcher = watch(&consul, &[], &r);

    wait_until(LIMIT, "web-1 from Consul", || ids(&r, "web").len() == 2).await;
    let web1 = r.healthy("web")[1].clone();
    assert_eq!(web1.id, "web-1");
    assert_eq!(
        web1.host, "127.0.0.1",
        "Node.Address when Service.Address is empty"
    );
    assert_eq!(web1.port, 8001);
    assert_eq!(web1.weight, 5);
    assert_eq!(web1.metadata["version"], "2.0");

    // A new instance appears well within the 30 s wait: the blocking query returns.
    let mut e2 = ConsulEntry::new("web-2", 8002);
    e2.address = "127.0.0.2".into();
    e2.passing_weight = None;
    consul.upsert("web", e2);
    let took = wait_until(LIMIT, "web-2 appears", || ids(&r, "web").len() == 3).await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let web2 = r.healthy("web")[2].clone();
    assert_eq!((web2.host.as_str(), web2.weight), ("127.0.0.2", 100));

    // One that stops passing goes.
    consul.set_passing("web", "web-1", false);
    wait_until(LIMIT, "web-1 dropped", || {
        ids(&r, "web") == ["static-1", "web-2"]
    })
    .await;

    // A new, undeclared service is registered too; leaving the catalog removes it.
    consul.upsert("billing", ConsulEntry::new("bill-1", 9001));
    wait_until(LIMIT, "billing discovered", || {
        ids(&r, "billing") == ["bill-1"]
    })
    .await;
    assert_eq!(r.services(), ["billing", "web"]);
    consul.remove_service("billing");
    wait_until(LIMIT, "billing gone", || !r.contains("billing")).await;
    // A declared service that leaves keeps its static instances.
    consul.remove_service("web");
    wait_until(LIMIT, "web's Consul instances gone", || {
        ids(&r, "web") == ["static-1"]
    })
    .await;
    watcher.shutdown(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_queries_not_polling() {
    let consul = FakeConsul::start().await;
    consul.upsert("api", ConsulEntry::new("api-1", 8001));
    consul.upsert("api", ConsulEntry::new("api-2", 8002));
    let r = Registry::new();
    let watcher = watch(&consul, &[], &r);
    wait_until(LIMIT, "api discovered", || ids(&r, "api").len() == 2).await;
    // Let the first (non-blocking) answers settle into blocking queries.
    wait_until(LIMIT, "watches started", || {
        consul.requests("/v1/health/service/api") >= 2
    })
    .await;
    // A settling margin, not a condition: nothing marks the moment every watch holds its
    // blocking query, and the count below must start after that.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let catalog = consul.requests("/v1/catalog");
    let health = consul.requests("/v1/health");
    // The quiet time under test: no new query may come while the held ones are open.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Each watch holds one query open for up to 30 s; polling even at 10/s would make 15.
    assert_eq!(
        consul.requests("/v1/catalog"),
        catalog,
        "catalog query is held open"
    );
    assert_eq!(
        consul.requests("/v1/health"),
        health,
        "health query is held open"
    );
    assert_eq!(ids(&r, "api").len(), 2);

    // A change wakes the held query: one more request per woken watch, not a burst.
    consul.upsert("api", ConsulEntry::new("api-3", 8003));
    wait_until(LIMIT, "api-3 appears", || ids(&r, "api").len() == 3).await;
    assert!(consul.requests("/v1/health") <= health + 2);
    watcher.shutdown(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_last_instances_while_consul_is_down_and_resumes() {
    let consul = FakeConsul::start().await;
    consul.upsert("pay", ConsulEntry::new("pay-1", 8001));
    let r = Registry::new();
    let watcher = watch(&consul, &["pay"], &r);
    wait_until(LIMIT, "pay discovered", || ids(&r, "pay") == ["pay-1"]).await;
    assert_eq!(
        consul.requests("/v1/catalog"),
        0,
        "a fixed list needs no catalog"
    );

    consul.stop();
    // Refused connections for a while (the outage under test): the last known instances stay.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(ids(&r, "pay"), ["pay-1"]);

    consul.upsert("pay", ConsulEntry::new("pay-2", 8002));
    consul.restart().await;
    wait_until(LIMIT, "resumes after Consul returns", || {
        ids(&r, "pay") == ["pay-1", "pay-2"]
    })
    .await;
    watcher.shutdown(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backs_off_on_errors() {
    let consul = FakeConsul::start().await;
    consul.upsert("q", ConsulEntry::new("q-1", 8001));
    let r = Registry::new();
    let watcher = watch(&consul, &[], &r);
    wait_until(LIMIT, "q discovered", || ids(&r, "q") == ["q-1"]).await;

    consul.set_error(true);
    // Wake the held queries so they meet the errors.
    consul.add_service("wake");
    let before = consul.requests("/v1/catalog");
    // The 2 s of errors under test: the backoff is measured over them.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let during = consul.requests("/v1/catalog") - before;
    // 100 ms doubling: about 5 tries in 2 s; a loop without backoff would make hundreds.
    assert!(
        (1..=10).contains(&during),
        "{during} catalog requests in 2 s of errors"
    );
    assert_eq!(ids(&r, "q"), ["q-1"], "kept through the errors");

    consul.set_error(false);
    consul.upsert("q", ConsulEntry::new("q-2", 8002));
    wait_until(LIMIT, "recovers", || ids(&r, "q") == ["q-1", "q-2"]).await;
    watcher.shutdown(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_list_ignores_other_services() {
    let consul = FakeConsul::start().await;
    consul.upsert("wanted", ConsulEntry::new("w-1", 8001));
    consul.upsert("other", ConsulEntry::new("o-1", 8002));
    let r = Registry::new();
    let watcher = watch(&consul, &["wanted", "absent"], &r);
    wait_until(LIMIT, "wanted discovered", || ids(&r, "wanted") == ["w-1"]).await;
    wait_until(LIMIT, "absent answered", || {
        consul.requests("/v1/health/service/absent") >= 1
    })
    .await;
    // A listed service with no instances in Consul is known, empty.
    wait_until(LIMIT, "absent known", || r.contains("absent")).await;
    assert!(!r.contains("other"));
    watcher.shutdown(LIMIT).await;
}
