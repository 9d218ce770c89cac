//! The `scope` parameter. Whatever the text, parsing answers without panicking; the scopes
//! it accepts are known, unique, single tokens, exactly the tokens sent, and parse back to
//! themselves once joined; adding the Matrix twins keeps them known, is idempotent, and
//! covers what was asked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mas_oauth_core::tokens::{consent_covers, known_scope, parse_scope, with_matrix_twins};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for token in text.split(' ') {
        let _ = known_scope(token);
    }
    let Ok(scopes) = parse_scope(Some(text)) else {
        return;
    };
    let sent: Vec<&str> = text.split(' ').filter(|t| !t.is_empty()).collect();
    for scope in &scopes {
        assert!(known_scope(scope), "{scope:?}");
        assert!(!scope.is_empty() && !scope.contains(' '), "{scope:?}");
        assert!(sent.contains(&scope.as_str()), "{scope:?} was not sent");
        assert_eq!(
            scopes.iter().filter(|s| *s == scope).count(),
            1,
            "{scope:?}"
        );
    }
    assert!(
        sent.iter().all(|t| scopes.iter().any(|s| s == t)),
        "a scope was dropped"
    );

    let joined = scopes.join(" ");
    assert_eq!(parse_scope(Some(&joined)).ok(), Some(scopes.clone()));
    assert!(consent_covers(&joined, &joined));

    let twins = with_matrix_twins(&joined);
    assert_eq!(with_matrix_twins(&twins), twins, "twins of {joined:?}");
    assert!(
        consent_covers(&twins, &joined),
        "{twins:?} does not cover {joined:?}"
    );
    assert!(
        parse_scope(Some(&twins)).is_ok(),
        "twins of known scopes: {twins:?}"
    );
});
