//! The stand-in Last.fm server checks what the real one checks.

use std::time::Duration;

use crate::common::fake_lastfm::{API_KEY, API_SECRET, FakeLastFm};

/// docs/protocols.md's worked example ("Signing"), byte for byte (its session key issued
/// by the server is substituted, so the signature is recomputed).
const EXAMPLE_BODY: &str = "albumArtist%5B1%5D=AC%2FDC&album%5B0%5D=Takk...&api_key=0123456789abcdef0123456789abcdef&api_sig=2ce114d60038545e95cb52175894ba1a&artist%5B0%5D=Sigur+R%C3%B3s&artist%5B1%5D=AC%2FDC&duration%5B0%5D=268&format=json&method=track.scrobble&sk=5f2b1c6d8e9a0b1c2d3e4f5a6b7c8d9e&timestamp%5B0%5D=1700000000&timestamp%5B1%5D=1700000300&trackNumber%5B0%5D=3&track%5B0%5D=Hopp%C3%ADpolla&track%5B1%5D=T.N.T.";

fn post(server: &FakeLastFm, body: &str) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = mpd_scrobbler::http::client(std::time::Duration::from_secs(10))
            .unwrap()
            .post(server.url())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    })
}

#[test]
fn checks_signature_and_session_key() {
    let server = FakeLastFm::start();
    // The documented signature verifies; the session key is then unknown.
    let (status, body) = post(&server, EXAMPLE_BODY);
    assert_eq!((status, body["error"].as_i64()), (403, Some(9)), "{body}");
    // Any change to a signed value breaks the signature.
    let (status, body) = post(&server, &EXAMPLE_BODY.replace("T.N.T.", "TNT"));
    assert_eq!((status, body["error"].as_i64()), (403, Some(13)), "{body}");
    let (_, body) = post(&server, &EXAMPLE_BODY.replace(API_KEY, "0000"));
    assert_eq!(body["error"].as_i64(), Some(10), "{body}");
    assert_eq!(server.request_count("track.scrobble"), 3);
    assert!(server.scrobbles().is_empty());
}

/// A signed `track.scrobble` body with `indices` as the item numbers
/// (names and times are plain ASCII, so they need no encoding).
fn scrobble_body(session: &str, indices: impl Iterator<Item = usize>) -> String {
    use md5::{Digest, Md5};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut params = std::collections::BTreeMap::new();
    params.insert("method".to_string(), "track.scrobble".to_string());
    params.insert("api_key".to_string(), API_KEY.to_string());
    params.insert("sk".to_string(), session.to_string());
    for i in indices {
        params.insert(format!("artist[{i}]"), format!("Artist {i}"));
        params.insert(format!("track[{i}]"), format!("Track {i}"));
        params.insert(
            format!("timestamp[{i}]"),
            (now - 600 - i as u64).to_string(),
        );
    }
    let mut base: String = params.iter().map(|(k, v)| format!("{k}{v}")).collect();
    base.push_str(API_SECRET);
    params.insert(
        "api_sig".to_string(),
        hex::encode(Md5::digest(base.as_bytes())),
    );
    params.insert("format".to_string(), "json".to_string());
    params
        .iter()
        .map(|(k, v)| {
            let k = k.replace('[', "%5B").replace(']', "%5D");
            format!("{k}={}", v.replace(' ', "+"))
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn refuses_batches_over_50_and_gaps_in_the_indices() {
    let server = FakeLastFm::start();
    let sk = server.issue_session("alice");
    // 51 and more: error 6, and nothing of the batch is kept.
    for n in [51, 52, 120] {
        let (status, body) = post(&server, &scrobble_body(&sk, 0..n));
        assert_eq!(
            (status, body["error"].as_i64()),
            (400, Some(6)),
            "{n}: {body}"
        );
    }
    // Item 1 missing: error 6.
    let (_, body) = post(&server, &scrobble_body(&sk, [0, 2].into_iter()));
    assert_eq!(body["error"].as_i64(), Some(6), "{body}");
    assert!(server.scrobbles().is_empty());
    assert!(server.scrobble_batches().is_empty());
    // Exactly 50 is accepted, each item echoed.
    let (status, body) = post(&server, &scrobble_body(&sk, 0..50));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scrobbles"]["@attr"]["accepted"], 50, "{body}");
    assert_eq!(
        body["scrobbles"]["scrobble"].as_array().map(Vec::len),
        Some(50)
    );
    assert_eq!(server.scrobbles().len(), 50);
    assert_eq!(server.scrobble_batches(), [50]);
}

#[test]
fn goes_down_and_comes_back_on_the_same_port() {
    let server = FakeLastFm::start();
    let addr = server
        .url()
        .trim_start_matches("http://")
        .trim_end_matches("/2.0/")
        .to_string();
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    server.go_down();
    assert!(std::net::TcpStream::connect(&addr).is_err());
    server.come_up();
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    assert!(
        server
            .wait_for_scrobbles(1, Duration::from_millis(50))
            .is_empty()
    );
}
