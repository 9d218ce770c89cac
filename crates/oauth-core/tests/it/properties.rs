//! Property tests of the parsers that take input from anyone: tokens, forms, scopes,
//! redirect URIs and JWS. Whatever arrives, nothing panics, and the stated invariants
//! hold.

use mas_data_model::TokenType;
use mas_oauth_core::authorize::redirect_uri_matches;
use mas_oauth_core::jose::UnverifiedJws;
use mas_oauth_core::params::Params;
use mas_oauth_core::tokens::{known_scope, parse_scope};
use proptest::prelude::*;
use url::Url;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const KINDS: [TokenType; 5] = [
    TokenType::AccessToken,
    TokenType::RefreshToken,
    TokenType::CompatAccessToken,
    TokenType::CompatRefreshToken,
    TokenType::PersonalAccessToken,
];

/// Strings over `alphabet`, `len` characters long.
fn string_of(
    alphabet: &'static [u8],
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(alphabet), len)
        .prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

/// Text made of the characters parsers care about, and some that they must not trip on.
fn hostile_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            proptest::sample::select(b"_.:/?#&=%+ -~*!@[]{}\"\\\0\n".as_slice())
                .prop_map(char::from),
            proptest::sample::select(ALNUM).prop_map(char::from),
            any::<char>(),
        ],
        0..80,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_formatted_token_checks_as_its_kind_and_any_typo_is_caught(
        kind in proptest::sample::select(KINDS.as_slice()),
        random in string_of(ALNUM, 30..31),
        position in 4usize..41,
        replacement in proptest::sample::select(ALNUM),
    ) {
        let token = kind.format(&random);
        prop_assert_eq!(TokenType::check(&token), Ok(kind));
        prop_assert_eq!(token.len(), 41);
        // One character of the random part or the checksum changed: refused.
        let mut typo = token.clone().into_bytes();
        prop_assume!(typo[position] != b'_' && typo[position] != replacement);
        typo[position] = replacement;
        let typo = String::from_utf8(typo).unwrap();
        prop_assert!(TokenType::check(&typo).is_err(), "{} accepted", typo);
    }

    #[test]
    fn checking_anything_never_panics(text in hostile_text()) {
        let _ = TokenType::check(&text);
        let _ = UnverifiedJws::parse(&text);
        let _ = parse_scope(Some(&text));
    }

    #[test]
    fn scopes_that_parse_are_known_and_unique(text in hostile_text()) {
        if let Ok(scopes) = parse_scope(Some(&text)) {
            for scope in &scopes {
                prop_assert!(known_scope(scope), "{}", scope);
            }
            let mut unique = scopes.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), scopes.len());
        }
    }

    #[test]
    fn forms_parse_or_are_refused_but_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Params::parse(&bytes);
    }

    #[test]
    fn a_well_formed_form_reads_back_what_was_sent(
        pairs in proptest::collection::btree_map(string_of(ALNUM, 1..12), hostile_text(), 0..6),
    ) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        match Params::parse(body.as_bytes()) {
            Ok(params) => {
                for (name, value) in &pairs {
                    let expected = (!value.is_empty()).then_some(value.as_str());
                    prop_assert_eq!(params.get(name).unwrap(), expected);
                }
            }
            // Refused only for a control character somewhere.
            Err(_) => prop_assert!(pairs.values().any(|v| v.chars().any(char::is_control))),
        }
    }

    #[test]
    fn jws_of_arbitrary_parts_parse_or_are_refused(
        parts in proptest::collection::vec(string_of(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=".as_slice(), 0..60), 0..5),
        key in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let token = parts.join(".");
        if let Ok(jws) = UnverifiedJws::parse(&token) {
            let _ = jws.verify_hmac(&key);
            let _ = jws.verify_with_jwks(&serde_json::json!({"keys": []}));
        }
    }

    #[test]
    fn a_matching_redirect_uri_is_a_registered_one(
        host in proptest::sample::select(&["app.example.com", "app.example.com.evil", "127.0.0.1", "[::1]", "localhost", "localhost.evil"][..]),
        scheme in proptest::sample::select(&["https", "http"][..]),
        port in proptest::option::of(1024u16..65535),
        path in string_of(b"abc/".as_slice(), 0..6),
        query in proptest::option::of(string_of(b"ab=&".as_slice(), 0..5)),
        changes in proptest::collection::vec(0u8..6, 0..3),
    ) {
        let build = |scheme: &str, host: &str, port: Option<u16>, path: &str, query: Option<&str>| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            Url::parse(&format!("{scheme}://{host}{port}/{path}{query}")).ok()
        };
        let Some(registered) = build(scheme, host, port, &path, query.as_deref()) else {
            return Ok(());
        };
        // The request's URI: the registered one with some parts changed.
        let (mut s, mut h, mut p, mut pa, mut q) =
            (scheme.to_owned(), host.to_owned(), port, path.clone(), query.clone());
        for change in &changes {
            match change {
                0 => s = if s == "https" { "http".into() } else { "https".into() },
                1 => h = format!("{h}.evil"),
                2 => p = Some(p.map_or(8443, |p| p.wrapping_add(1).max(1024))),
                3 => pa.push('/'),
                4 => q = Some(format!("{}x=1", q.unwrap_or_default())),
                _ => pa = format!("other/{pa}"),
            }
        }
        let Some(given) = build(&s, &h, p, &pa, q.as_deref()) else {
            return Ok(());
        };
        // The rule, stated from the parts rather than the implementation: the same
        // scheme, host, path and query, and the same port unless both are loopback http
        // (RFC 8252 §7.3).
        let same_but_port = s == scheme && h == host && pa == path && q == query;
        let same_port = given.port_or_known_default() == registered.port_or_known_default();
        let loopback = scheme == "http" && ["127.0.0.1", "[::1]", "localhost"].contains(&host);
        let expected = same_but_port && (same_port || loopback);
        prop_assert_eq!(
            redirect_uri_matches(std::slice::from_ref(&registered), &given),
            expected,
            "registered {}, given {}", registered, given
        );
    }
}
