//! Property tests of token verification (`Authenticator::verify_token`): arbitrary text,
//! arbitrary base64url segments and JSON headers with random `alg`, `kid`, `typ` (and
//! duplicated or extra fields), random payloads and signatures never panic, and a token is
//! accepted only when it is signed with the configured key and algorithm and its claims hold.
//!
//! Each property runs a bounded number of cases (`PROPTEST_CASES` raises it for a longer
//! local run); `fuzz/fuzz_targets/jwt_header.rs` checks the same for long campaigns.

mod support;

use std::sync::{Arc, LazyLock};

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use gw_auth::{Authenticator, JwtConfig, MemoryAuthStore};
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use serde_json::{json, Value};
use support::{hs_config, key_path, pem, SECRET};
use test_support::proptest_config;
use tokio::runtime::Runtime;

/// The verification clock: tokens are checked at this time, not the machine's.
const NOW: u64 = 1_700_000_000;

static RT: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
});

fn authenticator(config: JwtConfig) -> Arc<Authenticator> {
    RT.block_on(Authenticator::new(config, Arc::new(MemoryAuthStore::new())))
        .expect("valid configuration")
}

/// HS256 with the test secret (the default configuration).
static HS: LazyLock<Arc<Authenticator>> = LazyLock::new(|| authenticator(hs_config()));

/// RS256 with a public key file.
static RS: LazyLock<Arc<Authenticator>> = LazyLock::new(|| {
    authenticator(JwtConfig {
        algorithms: vec!["RS256".into()],
        public_key_file: Some(key_path("rsa_public.pem")),
        user_lookup: false,
        ..JwtConfig::default()
    })
});

static RSA_PRIVATE: LazyLock<EncodingKey> =
    LazyLock::new(|| EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).expect("RSA key"));

fn verify(auth: &Authenticator, token: &str) -> bool {
    RT.block_on(auth.verify_token(token, NOW)).is_ok()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------------------
// Tokens built from parts.
// ---------------------------------------------------------------------------------------

/// The `alg` values a header may carry (JSON), and whether a configuration of HS256 or
/// RS256 names exactly that algorithm.
const ALGS: &[&str] = &[
    r#""HS256""#,
    r#""HS384""#,
    r#""HS512""#,
    r#""RS256""#,
    r#""PS256""#,
    r#""ES256""#,
    r#""EdDSA""#,
    r#""none""#,
    r#""None""#,
    r#""NONE""#,
    r#""hs256""#,
    r#""HS256 ""#,
    r#""""#,
    "256",
    "null",
    r#"["HS256"]"#,
    r#"{"alg":"HS256"}"#,
];

/// How the signature part is made.
#[derive(Clone, Copy, Debug)]
enum Signing {
    /// HS256 with the configured secret.
    Hs256,
    /// HS256 with another secret.
    Hs256OtherKey,
    /// HS384 / HS512 with the configured secret.
    Hs384,
    Hs512,
    /// HS256 keyed with the RSA public key PEM (the HS/RS confusion).
    Hs256WithPublicPem,
    /// RS256 with the RSA private key.
    Rs256,
    /// Nothing after the last `.`.
    Empty,
    /// Random bytes.
    Random,
}

/// How a correct signature is spelled.
#[derive(Clone, Copy, Debug)]
enum Spelling {
    Canonical,
    /// With `=` padding.
    Padded,
    /// In the standard alphabet (`+/`).
    Standard,
    /// The last character's unused low bits set: the same bytes to a lenient decoder.
    TrailingBits,
    /// A space before it.
    Space,
}

#[derive(Clone, Debug)]
struct TokenParts {
    alg: Option<&'static str>,
    /// A second `alg` key, after the first.
    second_alg: Option<&'static str>,
    typ: Option<Value>,
    kid: Option<Value>,
    /// One more header field (`crit`, `jku`, `jwk`, `x5u`, `b64`, anything).
    extra: Option<(&'static str, Value)>,
    claims: Value,
    claims_valid: bool,
    signing: Signing,
    spelling: Spelling,
    random_sig: Vec<u8>,
}

impl TokenParts {
    fn header(&self) -> String {
        let mut fields = Vec::new();
        if let Some(a) = self.alg {
            fields.push(format!(r#""alg":{a}"#));
        }
        if let Some(a) = self.second_alg {
            fields.push(format!(r#""alg":{a}"#));
        }
        if let Some(t) = &self.typ {
            fields.push(format!(r#""typ":{t}"#));
        }
        if let Some(k) = &self.kid {
            fields.push(format!(r#""kid":{k}"#));
        }
        if let Some((name, v)) = &self.extra {
            fields.push(format!(r#""{name}":{v}"#));
        }
        format!("{{{}}}", fields.join(","))
    }

    /// The token, and whether its signature is spelled canonically (some respellings
    /// change nothing: a signature without `-` or `_` is the same in both alphabets).
    fn token(&self) -> (String, bool) {
        let message = format!(
            "{}.{}",
            b64(self.header().as_bytes()),
            b64(self.claims.to_string().as_bytes())
        );
        let secret = EncodingKey::from_secret(SECRET.as_bytes());
        let sig = match self.signing {
            Signing::Hs256 => {
                jsonwebtoken::crypto::sign(message.as_bytes(), &secret, Algorithm::HS256)
            }
            Signing::Hs256OtherKey => jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &EncodingKey::from_secret(b"another secret"),
                Algorithm::HS256,
            ),
            Signing::Hs384 => {
                jsonwebtoken::crypto::sign(message.as_bytes(), &secret, Algorithm::HS384)
            }
            Signing::Hs512 => {
                jsonwebtoken::crypto::sign(message.as_bytes(), &secret, Algorithm::HS512)
            }
            Signing::Hs256WithPublicPem => jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &EncodingKey::from_secret(&pem("rsa_public.pem")),
                Algorithm::HS256,
            ),
            Signing::Rs256 => {
                jsonwebtoken::crypto::sign(message.as_bytes(), &RSA_PRIVATE, Algorithm::RS256)
            }
            Signing::Empty => Ok(String::new()),
            Signing::Random => Ok(b64(&self.random_sig)),
        }
        .expect("signing");
        let spelled = respell(&sig, self.spelling);
        (format!("{message}.{spelled}"), spelled == sig)
    }

    /// Whether the header is one a verifier may accept: `alg` once, `typ` and `kid`
    /// absent or strings, nothing else.
    fn plain_header(&self) -> bool {
        self.second_alg.is_none()
            && self.extra.is_none()
            && self.typ.as_ref().is_none_or(Value::is_string)
            && self.kid.as_ref().is_none_or(Value::is_string)
    }

    /// Whether a verifier configured for `alg` (signing with `with`) must accept it.
    fn must_accept(&self, alg: &str, with: Signing, canonical: bool) -> bool {
        self.plain_header() && self.may_accept(alg, with, canonical)
    }

    /// Whether it may be accepted at all: the same, but for the header's extra fields.
    fn may_accept(&self, alg: &str, with: Signing, canonical: bool) -> bool {
        self.second_alg.is_none()
            && self.alg == Some(alg)
            && std::mem::discriminant(&self.signing) == std::mem::discriminant(&with)
            && canonical
            && self.claims_valid
    }
}

fn respell(sig: &str, spelling: Spelling) -> String {
    if sig.is_empty() {
        return String::new();
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(sig)
        .expect("a signature is base64url");
    match spelling {
        Spelling::Canonical => sig.to_owned(),
        Spelling::Padded => URL_SAFE.encode(&bytes),
        Spelling::Standard => STANDARD.encode(&bytes).trim_end_matches('=').to_owned(),
        Spelling::TrailingBits => {
            // Unused low bits exist when the length is not a multiple of 3.
            if bytes.len().is_multiple_of(3) {
                return format!("{sig}A");
            }
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut s = sig.as_bytes().to_vec();
            let last = s.last_mut().expect("not empty");
            let i = ALPHABET.iter().position(|c| c == last).expect("alphabet");
            *last = ALPHABET[i ^ 1];
            String::from_utf8(s).expect("ASCII")
        }
        Spelling::Space => format!(" {sig}"),
    }
}

fn claims() -> impl Strategy<Value = (Value, bool)> {
    prop_oneof![
        10 => Just((json!({"sub": "u1", "exp": NOW + 3600, "iss": "api-gateway"}), true)),
        1 => Just((json!({"sub": "u1", "exp": NOW - 1, "iss": "api-gateway"}), false)),
        1 => Just((json!({"sub": "", "exp": NOW + 3600, "iss": "api-gateway"}), false)),
        1 => Just((json!({"sub": "u1", "exp": NOW + 3600, "iss": "evil"}), false)),
        1 => Just((json!({"sub": "u1", "iss": "api-gateway"}), false)),
        1 => Just((json!({"sub": "u1", "exp": "soon", "iss": "api-gateway"}), false)),
        1 => Just((json!(["sub", "u1"]), false)),
        1 => any::<String>().prop_map(|s| (Value::String(s), false)),
    ]
}

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[ -~]{0,12}".prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => Just(json!(["a"])),
        1 => Just(json!({"a": 1})),
    ]
}

/// Token parts, with the `alg` of the configuration (`alg`) in about half of them.
fn token_parts(
    alg: &'static str,
    signings: &'static [Signing],
) -> impl Strategy<Value = TokenParts> {
    let alg_value = prop_oneof![1 => Just(alg), 1 => prop::sample::select(ALGS)];
    let extra = prop::option::weighted(
        0.15,
        (
            prop::sample::select(&["crit", "jku", "jwk", "x5u", "b64", "zip", "enc", "custom"][..]),
            prop_oneof![
                json_scalar(),
                Just(json!(["exp"])),
                Just(json!(false)),
                Just(json!({"kty": "oct", "k": "c2VjcmV0"})),
            ],
        ),
    );
    (
        (
            prop::option::weighted(0.95, alg_value),
            prop::option::weighted(0.05, prop::sample::select(ALGS)),
            prop::option::of(json_scalar()),
            prop::option::of(json_scalar()),
            extra,
        ),
        claims(),
        prop::sample::select(signings),
        prop::sample::select(
            &[
                Spelling::Canonical,
                Spelling::Canonical,
                Spelling::Canonical,
                Spelling::Padded,
                Spelling::Standard,
                Spelling::TrailingBits,
                Spelling::Space,
            ][..],
        ),
        prop::collection::vec(any::<u8>(), 0..70),
    )
        .prop_map(
            |(
                (alg, second_alg, typ, kid, extra),
                (claims, claims_valid),
                signing,
                spelling,
                random_sig,
            )| {
                TokenParts {
                    alg,
                    second_alg,
                    typ,
                    kid,
                    extra,
                    claims,
                    claims_valid,
                    signing,
                    spelling,
                    random_sig,
                }
            },
        )
}

const HS_SIGNINGS: &[Signing] = &[
    Signing::Hs256,
    Signing::Hs256,
    Signing::Hs256,
    Signing::Hs256,
    Signing::Hs256,
    Signing::Hs256OtherKey,
    Signing::Hs384,
    Signing::Hs512,
    Signing::Hs256WithPublicPem,
    Signing::Empty,
    Signing::Random,
];

/// RS256 signing is slow in a debug build: one case in four.
const RS_SIGNINGS: &[Signing] = &[
    Signing::Rs256,
    Signing::Hs256WithPublicPem,
    Signing::Hs256,
    Signing::Empty,
    Signing::Random,
    Signing::Hs256WithPublicPem,
    Signing::Empty,
    Signing::Random,
];

proptest! {
    #![proptest_config(proptest_config(1000))]

    /// HS256 configured: accepted exactly when the header names HS256 (once), the token is
    /// HS256-signed with the secret and spelled canonically, and the claims hold; extra
    /// header fields may only cost acceptance.
    #[test]
    fn hs256_accepts_only_its_own_tokens(parts in token_parts(r#""HS256""#, HS_SIGNINGS)) {
        let (token, canonical) = parts.token();
        let accepted = verify(&HS, &token);
        let alg = r#""HS256""#;
        if parts.must_accept(alg, Signing::Hs256, canonical) {
            prop_assert!(accepted, "refused {:?}: {}", parts.header(), token);
        }
        if accepted {
            prop_assert!(parts.may_accept(alg, Signing::Hs256, canonical), "accepted {:?}: {}", parts.header(), token);
        }
    }
}

proptest! {
    #![proptest_config(proptest_config(128))]

    /// RS256 configured with a public key: never an HS token (the public key PEM used as an
    /// HMAC secret), never `none`.
    #[test]
    fn rs256_accepts_only_its_own_tokens(parts in token_parts(r#""RS256""#, RS_SIGNINGS)) {
        let (token, canonical) = parts.token();
        let accepted = verify(&RS, &token);
        let alg = r#""RS256""#;
        if parts.must_accept(alg, Signing::Rs256, canonical) {
            prop_assert!(accepted, "refused {:?}: {}", parts.header(), token);
        }
        if accepted {
            prop_assert!(parts.may_accept(alg, Signing::Rs256, canonical), "accepted {:?}: {}", parts.header(), token);
        }
    }
}

proptest! {
    #![proptest_config(proptest_config(2000))]

    /// Any text: no panic, no acceptance.
    #[test]
    fn arbitrary_text_is_refused(token in prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_.=+/-]{0,80}",
        (
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(h, p, s)| format!("{}.{}.{}", b64(&h), b64(&p), b64(&s))),
        (
            prop::sample::select(ALGS),
            prop::collection::vec(any::<u8>(), 0..40),
            0usize..4,
        )
            .prop_map(|(alg, rest, dots)| {
                let h = b64(format!(r#"{{"alg":{alg}}}"#).as_bytes());
                format!("{h}{}{}", ".".repeat(dots), b64(&rest))
            }),
    ]) {
        prop_assert!(!verify(&HS, &token), "accepted {:?}", token);
        prop_assert!(!verify(&RS, &token), "accepted {:?}", token);
    }
}

/// The properties' oracle holds on hand-made tokens.
#[test]
fn known_tokens() {
    let good = TokenParts {
        alg: Some(r#""HS256""#),
        second_alg: None,
        typ: Some(json!("JWT")),
        kid: Some(json!("k1")),
        extra: None,
        claims: json!({"sub": "u1", "exp": NOW + 60, "iss": "api-gateway"}),
        claims_valid: true,
        signing: Signing::Hs256,
        spelling: Spelling::Canonical,
        random_sig: Vec::new(),
    };
    assert!(verify(&HS, &good.token().0));
    let none = TokenParts {
        alg: Some(r#""none""#),
        signing: Signing::Empty,
        ..good.clone()
    };
    assert!(!verify(&HS, &none.token().0));
    let twice = TokenParts {
        alg: Some(r#""none""#),
        second_alg: Some(r#""HS256""#),
        ..good.clone()
    };
    assert!(
        !verify(&HS, &twice.token().0),
        "a duplicated alg is refused"
    );
    let bits = TokenParts {
        spelling: Spelling::TrailingBits,
        ..good.clone()
    };
    assert!(
        !verify(&HS, &bits.token().0),
        "non-canonical base64 is refused"
    );
    let confused = TokenParts {
        signing: Signing::Hs256WithPublicPem,
        ..good.clone()
    };
    assert!(!verify(&RS, &confused.token().0));
    let rs = TokenParts {
        alg: Some(r#""RS256""#),
        signing: Signing::Rs256,
        ..good
    };
    assert!(verify(&RS, &rs.token().0));
}

/// RFC 7515 §4.1.11: a JWS whose `crit` lists an extension the recipient does not
/// understand is invalid. jsonwebtoken reads `crit` but never checks it, and the verifier
/// does not either, so a correctly signed token with `"crit": ["exp"]` (or `["b64"]`) is
/// accepted. Only the key holder can mint one: low impact, but not what the RFC says.
#[test]
fn crit_header_is_refused() {
    let parts = TokenParts {
        alg: Some(r#""HS256""#),
        second_alg: None,
        typ: None,
        kid: None,
        extra: Some(("crit", json!(["x-unknown"]))),
        claims: json!({"sub": "u1", "exp": NOW + 60, "iss": "api-gateway"}),
        claims_valid: true,
        signing: Signing::Hs256,
        spelling: Spelling::Canonical,
        random_sig: Vec::new(),
    };
    assert!(!verify(&HS, &parts.token().0));
}
