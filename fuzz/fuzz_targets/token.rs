//! Token checking, for every bearer token a client or homeserver sends. Whatever the
//! string, `TokenType::check` answers without panicking; a token of ours that it accepts
//! is exactly the one `TokenType::format` makes from the same random part; a well-formed
//! string is accepted exactly when its random part is letters and digits; and a token we
//! format checks as its kind, while one changed character is refused.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use mas_data_model::TokenType;

const KINDS: [TokenType; 5] = [
    TokenType::AccessToken,
    TokenType::RefreshToken,
    TokenType::CompatAccessToken,
    TokenType::CompatRefreshToken,
    TokenType::PersonalAccessToken,
];
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The checksum as the token format describes it (CRC-32 of `PREFIX_RANDOM` in base62,
/// least significant digit first, padded on the left with `0`), written out here so that
/// a string with a right checksum can be made without the checker's help.
fn checksum(base: &str) -> String {
    let mut n = crc32fast::hash(base.as_bytes());
    let mut digits = String::new();
    while n > 0 {
        digits.push(char::from(BASE62[(n % 62) as usize]));
        n /= 62;
    }
    format!("{digits:0>6}")
}

/// Synapse's tokens, accepted as they are because they carry no checksum of ours: stated
/// here from the format (`syt_`, `syr_`, a base64url macaroon whose first caveat is
/// `location`), not taken from the checker.
fn is_synapse_token(text: &str) -> bool {
    text.starts_with("syt_")
        || text.starts_with("syr_")
        || URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .is_ok_and(|bytes| bytes.get(4..13) == Some(b"location ".as_slice()))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(kind) = TokenType::check(text)
        && !is_synapse_token(text)
    {
        // `PREFIX_RANDOM_CRC`: 3 + 1 + 30 + 1 + 6 bytes.
        assert_eq!(text.len(), 41, "accepted {text:?}");
        let random = &text[4..34];
        assert!(
            random.bytes().all(|b| b.is_ascii_alphanumeric()),
            "accepted a token whose random part is not letters and digits: {text:?}"
        );
        assert_eq!(kind.format(random), text, "does not re-serialise to itself");
    }

    // `PREFIX_RANDOM_CRC` with a right checksum whatever the random part: accepted
    // exactly when that part is 30 letters and digits, as the format says.
    if let [selector, rest @ ..] = data
        && let Some(random) = rest.get(..30)
        && let Ok(random) = std::str::from_utf8(random)
        && !random.contains('_')
    {
        let kind = KINDS[usize::from(*selector) % KINDS.len()];
        let base = format!("{}_{random}", kind.prefix());
        let token = format!("{base}_{}", checksum(&base));
        if !is_synapse_token(&token) {
            let letters_and_digits = random.bytes().all(|b| b.is_ascii_alphanumeric());
            assert_eq!(
                TokenType::check(&token).ok(),
                letters_and_digits.then_some(kind),
                "{token:?}"
            );
        }
    }

    // A token of our own from the input: it checks as its kind, and any one character
    // changed (a typo, a forgery) is refused.
    if let [selector, position, replacement, rest @ ..] = data
        && rest.len() >= 30
    {
        let kind = KINDS[usize::from(*selector) % KINDS.len()];
        let random: String = rest[..30]
            .iter()
            .map(|b| char::from(ALNUM[usize::from(*b) % ALNUM.len()]))
            .collect();
        let token = kind.format(&random);
        assert_eq!(TokenType::check(&token), Ok(kind), "{token}");
        let mut typo = token.clone().into_bytes();
        let position = usize::from(*position) % typo.len();
        let replacement = 0x20 + replacement % 0x5f; // printable ASCII
        if typo[position] != replacement {
            typo[position] = replacement;
            if let Ok(typo) = String::from_utf8(typo) {
                assert!(
                    TokenType::check(&typo).is_err() || is_synapse_token(&typo),
                    "{typo} accepted, one character away from {token}"
                );
            }
        }
    }
});
