//! The stand-in Last.fm server checks what the real one checks.

use std::time::Duration;

use crate::common::fake_lastfm::{API_KEY, FakeLastFm};

/// protocols.md §1.4's worked example, byte for byte (its session key issued
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
fn checks_signature_session_and_batch_limit() {
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
