//! The token format shared with MAS: `PREFIX_RANDOM_CRC`, where RANDOM is 30 ASCII
//! letters and digits and CRC is the CRC-32 (ISO-HDLC) of `PREFIX_RANDOM` in six base62
//! characters. The checksum lets garbage be refused without touching the database.

use std::fmt;

/// What a token is for, known from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// An OAuth 2.0 access token (`mat_`).
    AccessToken,
    /// An OAuth 2.0 refresh token (`mar_`).
    RefreshToken,
    /// A compatibility-layer access token (`mct_`, or Synapse's `syt_` when imported).
    CompatAccessToken,
    /// A compatibility-layer refresh token (`mcr_`, or Synapse's `syr_` when imported).
    CompatRefreshToken,
    /// A personal access token (`mpt_`).
    PersonalAccessToken,
}

/// Why a string is not a token of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    /// Not `PREFIX_RANDOM_CRC` with the right lengths.
    #[error("not a token")]
    InvalidFormat,
    /// A prefix we do not issue.
    #[error("unknown token prefix")]
    UnknownPrefix,
    /// The checksum does not match: a typo or a forgery.
    #[error("token checksum mismatch")]
    InvalidChecksum,
}

/// Length of the random part.
const RANDOM_LEN: usize = 30;
/// Length of the checksum part.
const CRC_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl TokenType {
    /// The prefix of tokens we issue.
    #[must_use]
    pub fn prefix(self) -> &'static str {
        match self {
            Self::AccessToken => "mat",
            Self::RefreshToken => "mar",
            Self::CompatAccessToken => "mct",
            Self::CompatRefreshToken => "mcr",
            Self::PersonalAccessToken => "mpt",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Self> {
        Some(match prefix {
            "mat" => Self::AccessToken,
            "mar" => Self::RefreshToken,
            "mct" | "syt" => Self::CompatAccessToken,
            "mcr" | "syr" => Self::CompatRefreshToken,
            "mpt" => Self::PersonalAccessToken,
            _ => return None,
        })
    }

    /// A fresh token of this type from `random`, 30 letters or digits chosen by the caller's
    /// random source (keeps this crate free of one).
    ///
    /// # Panics
    /// If `random` is not 30 ASCII letters or digits (a bug in the caller).
    #[must_use]
    pub fn format(self, random: &str) -> String {
        assert!(
            random.len() == RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric()),
            "the random part of a token is 30 ASCII letters or digits"
        );
        let mut token = format!("{}_{random}_", self.prefix());
        let crc = checksum(&token[..token.len() - 1]);
        // The checksum is base62 digits: ASCII.
        token.extend(crc.iter().map(|&b| char::from(b)));
        token
    }

    /// The type of `token`, after checking its format and checksum. Tokens imported from
    /// Synapse (`syt_`, `syr_`, macaroons) have no checksum of ours and are accepted as
    /// compatibility tokens as they are.
    ///
    /// # Errors
    /// [`TokenFormatError`] when the string cannot be one of our tokens.
    pub fn check(token: &str) -> Result<Self, TokenFormatError> {
        if token.starts_with("syt_") {
            return Ok(Self::CompatAccessToken);
        }
        if token.starts_with("syr_") {
            return Ok(Self::CompatRefreshToken);
        }
        if looks_like_macaroon(token) {
            return Ok(Self::CompatAccessToken);
        }
        let mut parts = token.split('_');
        let (Some(prefix), Some(random), Some(crc), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenFormatError::InvalidFormat);
        };
        // A checksum is easy to compute for any random part: without this check, 30 bytes
        // of anything passed for a token of ours and went on to a database lookup.
        if prefix.len() != 3
            || random.len() != RANDOM_LEN
            || !random.bytes().all(|b| b.is_ascii_alphanumeric())
            || crc.len() != CRC_LEN
        {
            return Err(TokenFormatError::InvalidFormat);
        }
        let kind = Self::from_prefix(prefix).ok_or(TokenFormatError::UnknownPrefix)?;
        if checksum(&token[..3 + 1 + RANDOM_LEN]) != crc.as_bytes() {
            return Err(TokenFormatError::InvalidChecksum);
        }
        Ok(kind)
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AccessToken => "access token",
            Self::RefreshToken => "refresh token",
            Self::CompatAccessToken => "compat access token",
            Self::CompatRefreshToken => "compat refresh token",
            Self::PersonalAccessToken => "personal access token",
        })
    }
}

/// The six-character checksum, as MAS writes it: base62 digits least significant first,
/// then padded on the left with `0`. Odd, but existing tokens depend on it.
/// Built on the stack: introspection checks one on every request.
fn checksum(base: &str) -> [u8; CRC_LEN] {
    let mut n = crc32fast::hash(base.as_bytes());
    let mut digits = [0u8; CRC_LEN];
    let mut len = 0;
    // 62^6 exceeds u32::MAX: six digits always suffice.
    while n > 0 && len < CRC_LEN {
        digits[len] = BASE62[(n % 62) as usize];
        n /= 62;
        len += 1;
    }
    let mut padded = [b'0'; CRC_LEN];
    padded[CRC_LEN - len..].copy_from_slice(&digits[..len]);
    padded
}

/// Synapse's old macaroon tokens: base64url whose first caveat is `location`.
fn looks_like_macaroon(token: &str) -> bool {
    use base64::Engine;
    let Ok(decoded) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim_end_matches('='))
    else {
        return false;
    };
    decoded.get(4..13) == Some(b"location ".as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM: &str = "abcdefghijklmnopqrstuvwxyz0123";

    #[test]
    fn formatted_tokens_check_as_their_type() {
        for kind in [
            TokenType::AccessToken,
            TokenType::RefreshToken,
            TokenType::CompatAccessToken,
            TokenType::CompatRefreshToken,
            TokenType::PersonalAccessToken,
        ] {
            let token = kind.format(RANDOM);
            assert!(token.starts_with(kind.prefix()));
            assert_eq!(token.len(), 3 + 1 + 30 + 1 + 6);
            assert_eq!(TokenType::check(&token), Ok(kind));
        }
    }

    #[test]
    fn the_checksum_matches_the_mas_reference_encoding() {
        // CRC-32 of "mat_" + RANDOM, digits least significant first, left-padded.
        let crc = crc32fast::hash(format!("mat_{RANDOM}").as_bytes());
        let mut expected = Vec::new();
        let mut n = crc;
        while n > 0 {
            expected.push(BASE62[(n % 62) as usize]);
            n /= 62;
        }
        while expected.len() < 6 {
            expected.insert(0, b'0');
        }
        let token = TokenType::AccessToken.format(RANDOM);
        assert_eq!(&token[35..], String::from_utf8(expected).unwrap());
        // A small number shows the odd order: 62 = "10" in base62, written "01" then padded.
        assert_eq!(format!("{:0>6}", "01"), "000001");
    }

    #[test]
    fn damaged_tokens_are_refused_without_a_lookup() {
        let token = TokenType::AccessToken.format(RANDOM);
        let mut flipped = token.clone().into_bytes();
        flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            TokenType::check(&flipped),
            Err(TokenFormatError::InvalidChecksum)
        );
        assert_eq!(
            TokenType::check("mat_short_000000"),
            Err(TokenFormatError::InvalidFormat)
        );
        assert_eq!(TokenType::check(""), Err(TokenFormatError::InvalidFormat));
        assert_eq!(
            TokenType::check("garbage"),
            Err(TokenFormatError::InvalidFormat)
        );
        let foreign = format!("xyz_{RANDOM}_000000");
        assert_eq!(
            TokenType::check(&foreign),
            Err(TokenFormatError::UnknownPrefix)
        );
    }

    #[test]
    fn a_right_checksum_over_a_random_part_of_other_characters_is_refused() {
        // Found by the `token` fuzz target: the checksum was the only check of the random part.
        for random in [
            "==============================",
            "abcdefghijklmnopqrstuvwxyz012-",
        ] {
            let base = format!("mar_{random}");
            let crc = checksum(&base);
            let token = format!("{base}_{}", String::from_utf8_lossy(&crc));
            assert_eq!(
                TokenType::check(&token),
                Err(TokenFormatError::InvalidFormat),
                "{token}"
            );
        }
        assert_eq!(
            TokenType::check("mar_==============================_C2JAb4"),
            Err(TokenFormatError::InvalidFormat)
        );
    }

    #[test]
    fn synapse_tokens_are_compat_tokens() {
        assert_eq!(
            TokenType::check("syt_YWxpY2U_abcdef_123"),
            Ok(TokenType::CompatAccessToken)
        );
        assert_eq!(
            TokenType::check("syr_YWxpY2U_abcdef_123"),
            Ok(TokenType::CompatRefreshToken)
        );
        assert_eq!(
            TokenType::check("MDAxYmxvY2F0aW9uIGxpYnJlcHVzaC5uZXQKMDAx"),
            Ok(TokenType::CompatAccessToken)
        );
    }
}
