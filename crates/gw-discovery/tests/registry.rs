//! The registry on its own: sources, precedence, admin operations, health bookkeeping with an
//! explicit clock, the admin JSON and change notifications.

use std::collections::BTreeMap;

use gw_discovery::{HealthCheckConfig, Instance, RegisterError, Registry, Source, Status};
use serde_json::json;

fn inst(id: &str, port: u16) -> Instance {
    Instance::new(id, "127.0.0.1", port)
}

fn ids(list: &[Instance]) -> Vec<&str> {
    list.iter().map(|i| i.id.as_str()).collect()
}

fn checks() -> Option<HealthCheckConfig> {
    Some(HealthCheckConfig {
        healthy_threshold: 2,
        unhealthy_threshold: 2,
        ..HealthCheckConfig::default()
    })
}

#[test]
fn static_admin_and_consul_merge_by_id() {
    let r = Registry::new();
    r.set_static("svc", vec![inst("a", 1), inst("b", 2)], None);
    r.set_consul("svc", vec![inst("b", 20), inst("c", 3)]);
    r.register("svc", inst("c", 30)).unwrap();
    r.register("svc", inst("d", 4)).unwrap();

    let healthy = r.healthy("svc");
    assert_eq!(ids(&healthy), ["a", "b", "c", "d"]);
    assert_eq!(healthy[1].port, 20, "Consul over static");
    assert_eq!(healthy[2].port, 30, "admin over Consul");
    let sources: Vec<Source> = r
        .instances("svc")
        .unwrap()
        .iter()
        .map(|i| i.source)
        .collect();
    assert_eq!(
        sources,
        [Source::Static, Source::Consul, Source::Admin, Source::Admin]
    );

    // When the admin instance goes, the Consul one with that id is back.
    assert!(r.deregister("svc", "d"));
    r.set_admin(vec![]);
    assert_eq!(r.healthy("svc")[2].port, 3);
    // Consul answers replace the previous Consul instances.
    r.set_consul("svc", vec![inst("e", 5)]);
    assert_eq!(ids(&r.healthy("svc")), ["a", "b", "e"]);
    assert_eq!(r.healthy("svc")[1].port, 2, "static b again");
}

#[test]
fn register_needs_a_known_service_and_a_valid_instance() {
    let r = Registry::new();
    assert_eq!(
        r.register("nope", inst("a", 1)),
        Err(RegisterError::UnknownService("nope".into()))
    );
    r.set_static("svc", vec![], None);
    let bad = Instance::new("", "a b", 0);
    let err = r.register("svc", bad).unwrap_err();
    match &err {
        RegisterError::InvalidInstance(p) => {
            let paths: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
            assert_eq!(paths, ["id", "host", "port"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err
        .to_string()
        .starts_with("Invalid instance: id: must not be empty"));

    let mut one = inst("a", 1);
    one.metadata.insert("version".into(), "1".into());
    assert_eq!(r.register("svc", one.clone()).unwrap(), one);
    // Same id replaces.
    let two = Instance {
        weight: 7,
        ..inst("a", 2)
    };
    r.register("svc", two.clone()).unwrap();
    assert_eq!(r.healthy("svc"), vec![two.clone()]);
    assert_eq!(r.admin_instances(), vec![("svc".to_string(), two)]);

    // A service known only from Consul takes registrations too.
    r.set_consul("found", vec![]);
    assert!(r.register("found", inst("x", 9)).is_ok());
}

#[test]
fn deregister_removes_from_every_source() {
    let r = Registry::new();
    r.set_static("svc", vec![inst("a", 1)], None);
    r.register("svc", inst("b", 2)).unwrap();
    assert!(r.deregister("svc", "b"));
    assert!(!r.deregister("svc", "b"), "already gone");
    assert!(!r.deregister("other", "a"), "unknown service");
    assert!(r.deregister("svc", "a"), "static instances can go too");
    assert!(r.healthy("svc").is_empty());
    assert!(r.contains("svc"), "a declared service stays, empty");
    // The next reload brings the static instance back.
    r.set_static("svc", vec![inst("a", 1)], None);
    assert_eq!(ids(&r.healthy("svc")), ["a"]);
}

#[test]
fn health_is_kept_across_set_static_and_reset_on_a_new_address() {
    let r = Registry::new();
    r.set_static("svc", vec![inst("a", 1), inst("b", 2)], checks());
    let a = inst("a", 1);
    assert_eq!(
        r.record_check("svc", &a, false, 100),
        None,
        "1 of 2 failures"
    );
    assert_eq!(
        r.record_check("svc", &a, false, 101),
        Some(Status::Unhealthy)
    );
    assert_eq!(ids(&r.healthy("svc")), ["b"]);

    // Reload with the same address and a new weight: still unhealthy, counters kept.
    let mut a2 = inst("a", 1);
    a2.weight = 5;
    r.set_static("svc", vec![a2.clone(), inst("b", 2)], checks());
    assert_eq!(ids(&r.healthy("svc")), ["b"]);
    let info = &r.instances("svc").unwrap()[0];
    assert_eq!(info.health.status, Status::Unhealthy);
    assert_eq!(info.health.last_check, Some(101));
    assert_eq!(info.instance.weight, 5);
    assert_eq!(
        r.record_check("svc", &a2, true, 102),
        None,
        "1 of 2 successes"
    );
    assert_eq!(r.record_check("svc", &a2, true, 103), Some(Status::Healthy));
    r.record_check("svc", &a2, false, 104);
    r.record_check("svc", &a2, false, 105);
    assert_eq!(ids(&r.healthy("svc")), ["b"]);

    // A new address is a new target: healthy until checked.
    r.set_static("svc", vec![inst("a", 11), inst("b", 2)], checks());
    assert_eq!(ids(&r.healthy("svc")), ["a", "b"]);
    assert_eq!(r.instances("svc").unwrap()[0].health.last_check, None);
    // A result for the old address, arriving late, is ignored.
    assert_eq!(r.record_check("svc", &a2, false, 106), None);
    assert_eq!(r.record_check("svc", &a2, false, 107), None);
    assert_eq!(ids(&r.healthy("svc")), ["a", "b"]);
}

#[test]
fn results_are_ignored_without_a_health_check() {
    let r = Registry::new();
    r.set_static("svc", vec![inst("a", 1)], None);
    assert_eq!(r.record_check("svc", &inst("a", 1), false, 1), None);
    assert_eq!(r.record_check("svc", &inst("zz", 1), false, 1), None);
    assert_eq!(r.record_check("nope", &inst("a", 1), false, 1), None);
    assert_eq!(ids(&r.healthy("svc")), ["a"]);
    assert_eq!(r.instances("svc").unwrap()[0].health.last_check, None);
}

#[test]
fn summary_and_detail_have_the_admin_shapes() {
    let r = Registry::new();
    let mut a = inst("a", 8001);
    a.metadata = BTreeMap::from([("version".to_string(), "1.0.0".to_string())]);
    r.set_static("user_service", vec![a.clone(), inst("b", 8002)], checks());
    r.set_static("empty", vec![], None);
    r.record_check("user_service", &a, false, 1_700_000_000);
    r.record_check("user_service", &a, false, 1_700_000_001);

    assert_eq!(
        r.summary(),
        json!({
            "empty": {"total_instances": 0, "healthy_instances": 0, "health_ratio": 0.0},
            "user_service": {"total_instances": 2, "healthy_instances": 1, "health_ratio": 0.5},
        })
    );
    assert_eq!(
        r.detail("user_service").unwrap(),
        json!({
            "service": "user_service",
            "instances": [
                {"id": "a", "host": "127.0.0.1", "port": 8001, "weight": 100,
                 "status": "unhealthy", "last_check": 1_700_000_001u64,
                 "metadata": {"version": "1.0.0"}},
                {"id": "b", "host": "127.0.0.1", "port": 8002, "weight": 100,
                 "status": "healthy", "last_check": null, "metadata": {}},
            ]
        })
    );
    assert_eq!(r.detail("nope"), None);
}

#[test]
fn subscribers_hear_of_healthy_set_changes_only() {
    let r = Registry::new();
    let mut rx = r.subscribe();
    r.set_static("svc", vec![inst("a", 1)], checks());
    assert!(rx.has_changed().unwrap(), "a new instance");
    rx.borrow_and_update();

    r.set_static("svc", vec![inst("a", 1)], checks());
    assert!(!rx.has_changed().unwrap(), "same set: no news");
    r.record_check("svc", &inst("a", 1), false, 1);
    assert!(!rx.has_changed().unwrap(), "below the threshold: no news");
    r.record_check("svc", &inst("a", 1), false, 2);
    assert!(rx.has_changed().unwrap(), "went unhealthy");
    rx.borrow_and_update();

    r.register("svc", inst("b", 2)).unwrap();
    assert!(rx.has_changed().unwrap(), "registered");
    rx.borrow_and_update();
    r.deregister("svc", "b");
    assert!(rx.has_changed().unwrap(), "deregistered");
    rx.borrow_and_update();
    r.set_consul("svc", vec![inst("c", 3)]);
    assert!(rx.has_changed().unwrap(), "from Consul");
    rx.borrow_and_update();
    let mut c = inst("c", 3);
    c.weight = 9;
    r.set_consul("svc", vec![c]);
    assert!(
        rx.has_changed().unwrap(),
        "a weight change matters to the balancer"
    );
    rx.borrow_and_update();
    r.register("svc", inst("d", 4)).unwrap();
    rx.borrow_and_update();
    r.remove_service("svc");
    assert!(
        rx.has_changed().unwrap(),
        "service undeclared: its admin instance left"
    );
    assert_eq!(ids(&r.healthy("svc")), ["c"]);
}

#[test]
fn consul_services_come_and_go_undeclared_ones_entirely() {
    let r = Registry::new();
    r.set_static("declared", vec![inst("s", 1)], None);
    r.set_consul("declared", vec![inst("c", 2)]);
    r.set_consul("found", vec![inst("f", 3)]);
    assert_eq!(r.services(), ["declared", "found"]);

    r.remove_consul("found");
    assert_eq!(r.services(), ["declared"], "nothing else keeps it");
    r.remove_consul("declared");
    assert_eq!(ids(&r.healthy("declared")), ["s"], "static instances stay");

    // Undeclaring keeps what Consul still lists.
    r.set_consul("declared", vec![inst("c", 2)]);
    r.register("declared", inst("adm", 4)).unwrap();
    r.remove_service("declared");
    assert_eq!(ids(&r.healthy("declared")), ["c"]);
    r.remove_consul("declared");
    assert!(r.services().is_empty());
    assert!(r.healthy("declared").is_empty());
}

#[test]
fn set_admin_replaces_every_admin_instance() {
    let r = Registry::new();
    r.set_static("a", vec![], None);
    r.set_static("b", vec![], None);
    r.register("a", inst("old", 1)).unwrap();
    let rejected = r.set_admin(vec![
        ("b".into(), inst("new", 2)),
        ("ghost".into(), inst("g", 3)),
    ]);
    assert_eq!(rejected, vec![("ghost".to_string(), inst("g", 3))]);
    assert!(r.healthy("a").is_empty());
    assert_eq!(r.admin_instances(), vec![("b".to_string(), inst("new", 2))]);
}
