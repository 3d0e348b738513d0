//! Request signing for the Audioscrobbler 2.0 API: `api_sig` and the legacy
//! mobile `authToken` that Libre.fm and Maloja still expect
//! (docs/protocols.md, "Signing" and "Authorisation"). Pure functions, no I/O.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

/// Request parameters by name. `String` ordering is byte-wise, which is the
/// order the signature needs (`artist[10]` before `artist[1]`).
pub(crate) type Params = BTreeMap<String, String>;

/// Parameters that take no part in the signature.
const UNSIGNED: [&str; 3] = ["format", "callback", "api_sig"];

/// Computes `api_sig` (docs/protocols.md, "Signing"): every parameter except `format`,
/// `callback` and `api_sig`, sorted byte-wise by name, name and value
/// concatenated without separators, the shared secret appended, then the MD5
/// as 32 lowercase hex digits.
///
/// Values are signed raw, exactly as they will be sent before URL encoding.
pub(crate) fn api_sig(params: &BTreeMap<String, String>, secret: &str) -> String {
    md5_hex(&signature_base(params, secret))
}

/// The string that [`api_sig`] hashes.
fn signature_base(params: &Params, secret: &str) -> String {
    let mut base = String::new();
    for (name, value) in params {
        if !UNSIGNED.contains(&name.as_str()) {
            base.push_str(name);
            base.push_str(value);
        }
    }
    base.push_str(secret);
    base
}

/// Adds `method`, `api_key`, `sk` (when given), `api_sig` and `format=json`
/// to `params`, making them a complete request body.
pub(crate) fn sign_request(
    params: &mut Params,
    method: &str,
    api_key: &str,
    session_key: Option<&str>,
    secret: &str,
) {
    params.insert("method".into(), method.into());
    params.insert("api_key".into(), api_key.into());
    if let Some(sk) = session_key {
        params.insert("sk".into(), sk.into());
    }
    let sig = api_sig(params, secret);
    params.insert("api_sig".into(), sig);
    params.insert("format".into(), "json".into());
}

/// The legacy mobile-auth token, `md5(lowercase(username) + md5_hex(password))`.
///
/// GNU FM lowercases the stored user name before comparing, so a mixed-case
/// name only works if the client lowercases too (pylast does not).
pub(crate) fn auth_token(username: &str, password: &str) -> String {
    md5_hex(&format!("{}{}", username.to_lowercase(), md5_hex(password)))
}

fn md5_hex(text: &str) -> String {
    // md-5 0.11 digests no longer implement `LowerHex`.
    hex::encode(Md5::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const API_KEY: &str = "0123456789abcdef0123456789abcdef";
    const SECRET: &str = "fedcba9876543210fedcba9876543210";

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    #[test]
    fn auth_get_token_example() {
        let p = params(&[("api_key", API_KEY), ("method", "auth.getToken")]);
        assert_eq!(api_sig(&p, SECRET), "122db8efff0100fb11599a7629ab9106");
    }

    #[test]
    fn auth_get_mobile_session_example() {
        let p = params(&[
            ("api_key", API_KEY),
            ("method", "auth.getMobileSession"),
            ("password", "s3cret pässword"),
            ("username", "alice"),
        ]);
        assert_eq!(api_sig(&p, SECRET), "2dcbd0e1111ee7b760a73f95cad00bae");
    }

    #[test]
    fn community_placeholder_example() {
        let p = params(&[
            ("api_key", "YOUR_API_KEY"),
            ("method", "auth.getSession"),
            ("token", "YOUR_REQUESTED_TOKEN"),
        ]);
        assert_eq!(
            api_sig(&p, "YOUR_SECRET"),
            "94539006de89b3c6b3c030bb1e52b9c4"
        );
    }

    #[test]
    fn format_callback_and_api_sig_are_not_signed() {
        let bare = params(&[("api_key", API_KEY), ("method", "auth.getToken")]);
        let mut decorated = bare.clone();
        decorated.insert("format".into(), "json".into());
        decorated.insert("callback".into(), "fn".into());
        decorated.insert("api_sig".into(), "whatever".into());
        assert_eq!(api_sig(&decorated, SECRET), api_sig(&bare, SECRET));
    }

    #[test]
    fn sign_request_adds_envelope_and_signs_it() {
        let mut p = Params::new();
        sign_request(&mut p, "auth.getToken", API_KEY, None, SECRET);
        assert_eq!(
            p,
            params(&[
                ("api_key", API_KEY),
                ("api_sig", "122db8efff0100fb11599a7629ab9106"),
                ("format", "json"),
                ("method", "auth.getToken"),
            ])
        );
    }

    #[test]
    fn artist_10_sorts_before_artist_1_in_a_12_item_batch() {
        let mut p = Params::new();
        for i in 0..12 {
            p.insert(format!("artist[{i}]"), format!("A{i}"));
        }
        let base = signature_base(&p, SECRET);
        let expected: String = [0, 10, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9]
            .iter()
            .map(|i| format!("artist[{i}]A{i}"))
            .chain([SECRET.to_owned()])
            .collect();
        assert_eq!(base, expected);
    }

    #[test]
    fn uppercase_names_sort_before_brackets() {
        let p = params(&[
            ("album[0]", "x"),
            ("albumArtist[0]", "y"),
            ("track[0]", "z"),
            ("trackNumber[0]", "1"),
        ]);
        assert_eq!(
            signature_base(&p, ""),
            "albumArtist[0]yalbum[0]xtrackNumber[0]1track[0]z"
        );
    }

    #[test]
    fn libre_fm_auth_token_example_lowercases_the_username() {
        assert_eq!(
            md5_hex("s3cret pässword"),
            "a71e49a97820329296832b2440cdd04b"
        );
        assert_eq!(
            auth_token("Alice", "s3cret pässword"),
            "ce8f8aeac66d2efad4835830bc1c0bd4"
        );
    }
}
