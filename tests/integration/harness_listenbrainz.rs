//! The stand-in ListenBrainz server validates like listenbrainz-server.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::fake_listenbrainz::{Failure, FakeListenBrainz, Flavor, TOKEN};

fn post(server: &FakeListenBrainz, token: &str, body: &Value) -> (u16, Option<String>, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = mpd_scrobbler::http::client(std::time::Duration::from_secs(10))
            .unwrap()
            .post(format!("{}/1/submit-listens", server.url()))
            .header("Authorization", format!("Token {token}"))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let reset = resp
            .headers()
            .get("X-RateLimit-Reset-In")
            .map(|v| v.to_str().unwrap().to_string());
        (status, reset, resp.json().await.unwrap_or(Value::Null))
    })
}

fn listen(at: u64, title: &str) -> Value {
    json!({"listened_at": at, "track_metadata": {"artist_name": "AC/DC", "track_name": title,
        "additional_info": {"duration_ms": 214000}}})
}

const AT: u64 = 1_700_000_300;

#[test]
fn validates_like_listenbrainz() {
    let lb = FakeListenBrainz::start();
    // docs/protocols.md's example ("Submitting"), as a single listen.
    let ok = json!({"listen_type": "single", "payload": [listen(AT, "T.N.T.")]});
    let (status, reset, _) = post(&lb, TOKEN, &ok);
    assert_eq!(status, 200);
    assert!(reset.is_some(), "rate-limit headers on every answer");
    assert_eq!(lb.listens()[0].listened_at, Some(AT));
    let cases = [
        (
            json!({"listen_type": "single", "payload": [listen(AT, "a"), listen(AT + 1, "b")]}),
            400,
        ),
        (
            json!({"listen_type": "single", "payload": [listen(4_000_000_000, "future")]}),
            400,
        ),
        (
            json!({"listen_type": "playing_now", "payload": [listen(AT, "has listened_at")]}),
            400,
        ),
        (
            json!({"listen_type": "single", "payload": [{"listened_at": AT, "track_metadata":
            {"artist_name": "a", "track_name": "b", "additional_info": {"recording_mbid": "nope"}}}]}),
            400,
        ),
        (
            json!({"listen_type": "single", "payload": [{"listened_at": AT, "track_metadata":
            {"artist_name": "a", "track_name": "b", "additional_info": {"duration": 1, "duration_ms": 1000}}}]}),
            400,
        ),
        (
            json!({"listen_type": "single", "payload": [{"listened_at": AT, "extra": 1, "track_metadata":
            {"artist_name": "a", "track_name": "b"}}]}),
            400,
        ),
        (
            json!({"listen_type": "import", "payload": [listen(AT, "a"), listen(AT + 1, "b")]}),
            200,
        ),
        // null and "" entries in artist_mbids are dropped, not refused.
        (
            json!({"listen_type": "single", "payload": [{"listened_at": AT, "track_metadata":
            {"artist_name": "a", "track_name": "b", "additional_info":
            {"artist_mbids": [null, "", "66c662b6-6e2f-4930-8610-912e24c63ed1"]}}}]}),
            200,
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(post(&lb, TOKEN, &body).0, expected, "{body}");
    }
    assert_eq!(post(&lb, "unknown", &ok).0, 401);
    lb.fail_next(1, Failure::RateLimited { reset_in: 3 });
    let (status, reset, _) = post(&lb, TOKEN, &ok);
    assert_eq!((status, reset.as_deref()), (429, Some("3")));
    lb.go_down();
    let addr = lb.url().trim_start_matches("http://").to_string();
    assert!(std::net::TcpStream::connect(&addr).is_err());
    lb.come_up();
    assert_eq!(post(&lb, TOKEN, &ok).0, 200);
    assert_eq!(lb.wait_for_listens(5, Duration::from_secs(1)).len(), 5);
}

#[test]
fn maloja_duplicates_and_conflicts() {
    let m = FakeListenBrainz::start_flavor(Flavor::Maloja);
    let single = |at, title| json!({"listen_type": "single", "payload": [listen(at, title)]});
    assert_eq!(post(&m, TOKEN, &single(AT, "a")).0, 200);
    assert_eq!(
        post(&m, TOKEN, &single(AT, "a")).0,
        200,
        "a duplicate is accepted"
    );
    assert_eq!(
        post(&m, TOKEN, &single(AT, "b")).0,
        409,
        "same time, other track"
    );
    // The first duplicate in an import silently ends it.
    let import = json!({"listen_type": "import", "payload": [listen(AT + 1, "c"), listen(AT, "a"), listen(AT + 2, "d")]});
    assert_eq!(post(&m, TOKEN, &import).0, 200);
    let titles: Vec<_> = m.listens().into_iter().map(|l| l.track_name).collect();
    assert_eq!(titles, ["a", "c"]);
}

/// A GET or POST with an optional `Authorization` header: (status, JSON body).
fn call(url: String, auth: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = mpd_scrobbler::http::client(std::time::Duration::from_secs(10)).unwrap();
        let mut req = match body {
            Some(b) => client.post(url).json(b),
            None => client.get(url),
        };
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    })
}

#[test]
fn auth_and_validate_token() {
    let lb = FakeListenBrainz::start();
    let validate = |s: &FakeListenBrainz, auth: Option<&str>| {
        call(format!("{}/1/validate-token", s.url()), auth, None)
    };
    let good = format!("Token {TOKEN}");
    let (status, body) = validate(&lb, Some(&good));
    assert_eq!((status, &body["user_name"]), (200, &json!("alice")));
    // ListenBrainz answers an unknown token with 200 and valid:false, no token with 400.
    let (status, body) = validate(&lb, Some("Token nope"));
    assert_eq!((status, &body["valid"]), (200, &json!(false)));
    assert_eq!(validate(&lb, None).0, 400);
    // The scheme word is not checked, only the token.
    let (status, _) = validate(&lb, Some(&format!("Bearer {TOKEN}")));
    assert_eq!(status, 200);

    let submit = format!("{}/1/submit-listens", lb.url());
    let ok = json!({"listen_type": "single", "payload": [listen(AT, "T.N.T.")]});
    let (status, body) = call(submit.clone(), None, Some(&ok));
    assert_eq!(status, 401);
    assert_eq!(
        body["error"],
        "You need to provide an Authorization header."
    );
    lb.add_token("bob-token", "bob");
    assert_eq!(
        call(submit.clone(), Some("Token bob-token"), Some(&ok)).0,
        200
    );
    assert_eq!(lb.listens()[0].user, "bob");
    lb.revoke_token(TOKEN);
    assert_eq!(call(submit, Some(&good), Some(&ok)).0, 401);

    // Maloja refuses an unknown key on validate-token too.
    let m = FakeListenBrainz::start_flavor(Flavor::Maloja);
    assert_eq!(validate(&m, Some("Token nope")).0, 401);
    assert_eq!(validate(&m, Some(&good)).0, 200);
}
