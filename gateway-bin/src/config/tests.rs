//! Tests of loading and validating a configuration.

use super::*;

const BASE: &str = r#"
[services.users]
instances = [{ id = "u1", host = "127.0.0.1", port = 8001 }]

[[routes]]
id = "users"
path = "/api/users"
service = "users"
"#;

#[test]
fn default_config_is_valid() {
    Config::from_toml_str(DEFAULT_CONFIG).expect("embedded default must validate");
}

#[test]
fn minimal_config_parses() {
    let c = Config::from_toml_str(BASE).unwrap();
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.services["users"].instances[0].weight, 100);
    assert_eq!(c.server.listen.port(), 8080);
}

#[test]
fn unknown_key_is_named() {
    let e = Config::from_toml_str("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
    let text = e.to_string();
    assert!(text.contains("lisen"), "{text}");
}

#[test]
fn wrong_type_has_path() {
    let text = format!(
        "{BASE}\n[[routes]]\nid = \"b\"\npath = \"/b\"\nservice = \"users\"\npriority = \"high\"\n"
    );
    let e = Config::from_toml_str(&text).unwrap_err();
    assert!(e.to_string().starts_with("routes[1].priority:"), "{e}");
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let text = r#"
[services.users]
instances = [{ id = "u1", host = "127.0.0.1", port = 0 }]

[[routes]]
id = "a"
path = "/a"
service = "users"

[[routes]]
id = "a"
pattern = "^/(unclosed"
service = "users"

[[routes]]
id = "c"
path = "/c"
service = "bills"
methods = ["GET", "BAD METHOD"]
timeout = { connect = 0, send = 1, read = 1 }
"#;
    let e = Config::from_toml_str(text).unwrap_err().to_string();
    for want in [
        "services.users.instances[0].port: must be between 1 and 65535",
        "routes[1].id: duplicate route id \"a\"",
        "routes[1].pattern: invalid regex",
        "routes[2].service: unknown service \"bills\"",
        "routes[2].methods[1]: invalid method",
        "routes[2].timeout.connect: must be a positive number of seconds",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn admin_token_required_off_loopback() {
    let e = Config::from_toml_str("[admin]\nlisten = \"0.0.0.0:9901\"\n").unwrap_err();
    assert!(e.to_string().contains("admin.token: required"), "{e}");
    Config::from_toml_str("[admin]\nlisten = \"0.0.0.0:9901\"\ntoken = \"t\"\n").unwrap();
}

#[test]
fn an_empty_admin_token_is_an_error() {
    for listen in ["127.0.0.1:9901", "0.0.0.0:9901"] {
        let e = Config::from_toml_str(&format!("[admin]\nlisten = \"{listen}\"\ntoken = \"\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("admin.token: must not be empty"), "{e}");
    }
}

#[test]
fn admin_allowed_hosts_default_and_configured() {
    let c = Config::from_toml_str("").unwrap();
    let bound: SocketAddr = "127.0.0.1:4567".parse().unwrap();
    assert_eq!(
        c.admin.hosts(bound),
        ["127.0.0.1:4567", "localhost:4567", "[::1]:4567"]
    );
    let c = Config::from_toml_str("[admin]\nallowed_hosts = [\"admin.internal:9901\"]\n").unwrap();
    assert_eq!(c.admin.hosts(bound), ["admin.internal:9901"]);
    let e = Config::from_toml_str("[admin]\nallowed_hosts = [\"http://x/\"]\n").unwrap_err();
    assert!(e.to_string().contains("admin.allowed_hosts[0]"), "{e}");
}

/// A list where a table is documented is refused, with the key's path, at every level.
#[test]
fn a_list_for_a_table_is_refused_with_its_path() {
    let route = "[[routes]]\nid = \"r\"\npath = \"/r\"\nservice = \"users\"\n";
    let service =
        "[services.users]\ninstances = [{ id = \"u1\", host = \"127.0.0.1\", port = 8001 }]\n";
    let cases = [
        (
            format!("{service}{route}timeout = [1, 2, 3]\n"),
            "routes[0].timeout",
            "TimeoutConfig",
        ),
        (
            format!("{service}{route}retry = [2, 0.5]\n"),
            "routes[0].retry",
            "RetryConfig",
        ),
        (
            format!("{service}{route}rate_limit = [60, 10]\n"),
            "routes[0].rate_limit",
            "Limit",
        ),
        (
            format!("{service}{route}security = [true]\n"),
            "routes[0].security",
            "SecurityConfig",
        ),
        (
            format!("{service}{route}headers = [{{}}, {{}}]\n"),
            "routes[0].headers",
            "HeadersConfig",
        ),
        (
            format!("{service}{route}headers = {{ request = [{{}}, []] }}\n"),
            "routes[0].headers.request",
            "HeaderRulesConfig",
        ),
        (
            format!("{service}{route}[routes.timeout]\nconnect = 1\n[[routes]]\nid = \"s\"\npath = \"/s\"\nservice = \"users\"\ntimeout = [1, 2, 3]\n"),
            "routes[1].timeout",
            "TimeoutConfig",
        ),
        (
            "[server]\ntls = [\"127.0.0.1:8443\", \"cert.pem\", \"key.pem\"]\n".to_owned(),
            "server.tls",
            "TlsConfig",
        ),
        (
            "[rate_limit]\ndefault = [100, 20]\n".to_owned(),
            "rate_limit.default",
            "Limit",
        ),
        (
            "server = [\"127.0.0.1:8080\"]\n".to_owned(),
            "server",
            "ServerConfig",
        ),
        (
            "[services.users]\ninstances = [[\"u1\", \"127.0.0.1\", 8001, 100, {}]]\n"
                .to_owned(),
            "services.users.instances[0]",
            "Instance",
        ),
        (
            "[services.users]\ncircuit_breaker = [5]\n".to_owned(),
            "services.users.circuit_breaker",
            "BreakerOverride",
        ),
    ];
    for (text, path, name) in cases {
        let e = Config::from_toml_str(&text).unwrap_err().to_string();
        let want = format!("{path}: invalid type: found sequence, expected struct {name}");
        assert!(
            e.starts_with(&want),
            "want {want:?}, got:\n{e}\n---\n{text}"
        );
    }
    // The documented shapes still parse.
    let text = format!(
        "{service}{route}timeout = {{ connect = 1, send = 2, read = 3 }}\nretry = {{ times = 2 }}\n\
         rate_limit = {{ requests_per_minute = 60 }}\nsecurity = {{ allowed_roles = [\"a\"] }}\n\
         headers = {{ request = {{ remove = [\"x-a\"] }} }}\n"
    );
    let c = Config::from_toml_str(&text).unwrap();
    assert_eq!(c.routes[0].timeout.as_ref().unwrap().read, 3.0);
}

#[test]
fn a_list_for_a_table_is_refused_in_a_file() {
    let dir = std::env::temp_dir().join(format!("gw-config-strict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(&file, format!("{BASE}timeout = [1, 2, 3]\n")).unwrap();
    let e = Config::load(Some(&file)).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "routes[0].timeout: invalid type: found sequence, expected struct TimeoutConfig"
        ),
        "{e}"
    );
    assert!(
        e.contains(&file.display().to_string()),
        "names the file: {e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn either_pattern_or_path() {
    let text = "[services.s]\n[[routes]]\nid = \"r\"\nservice = \"s\"\n";
    let e = Config::from_toml_str(text).unwrap_err();
    assert!(
        e.to_string()
            .contains("routes[0].pattern: one of pattern or path is required"),
        "{e}"
    );
}
