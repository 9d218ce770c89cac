//! The rules MAS's OPA policy applies, read from its `policy.data` keys and applied
//! here without OPA: which usernames and email addresses may register, what passwords
//! must hold, which requesters are turned away, what dynamic client registration may
//! relax, and who may request admin rights.
//!
//! Matching follows MAS: lists are case-sensitive; a regex matches anywhere in the
//! value unless it anchors itself; an allow-list that is set lets through only what it
//! matches, and a ban wins over an allowance. Domain patterns are globs over the labels of
//! the domain: `*` stays within one label, `**` crosses dots.

use std::net::IpAddr;

use mas_data_model::User;
use regex::Regex;

/// A `policy.data` value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A regular expression that does not compile.
    #[error("`{pattern}` is not a regular expression: {reason}")]
    Regex {
        /// The expression.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A domain pattern that does not translate.
    #[error("`{0}` is not a domain pattern")]
    Domain(String),
    /// An IP address or network that does not parse.
    #[error("`{0}` is not an IP address or network")]
    Network(String),
}

/// MAS's string constraints: a value matches when any entry of any list does.
#[derive(Debug, Clone, Default)]
pub struct StringMatch {
    literals: Vec<String>,
    substrings: Vec<String>,
    regexes: Vec<Regex>,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
}

/// The lists of a [`StringMatch`], as written in the configuration.
#[derive(Debug, Clone, Default)]
pub struct StringLists {
    /// Exact values.
    pub literals: Vec<String>,
    /// Values containing one of these.
    pub substrings: Vec<String>,
    /// Values one of these expressions finds a match in (unanchored).
    pub regexes: Vec<String>,
    /// Values starting with one of these.
    pub prefixes: Vec<String>,
    /// Values ending with one of these.
    pub suffixes: Vec<String>,
}

impl StringMatch {
    /// The matcher of these lists.
    ///
    /// # Errors
    /// [`PolicyError::Regex`] for an expression that does not compile.
    pub fn new(lists: StringLists) -> Result<Self, PolicyError> {
        let regexes = lists
            .regexes
            .iter()
            .map(|pattern| {
                Regex::new(pattern).map_err(|e| PolicyError::Regex {
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            literals: lists.literals,
            substrings: lists.substrings,
            regexes,
            prefixes: lists.prefixes,
            suffixes: lists.suffixes,
        })
    }

    /// Whether `value` matches any entry.
    #[must_use]
    pub fn matches(&self, value: &str) -> bool {
        self.literals.iter().any(|l| l == value)
            || self.substrings.iter().any(|s| value.contains(s.as_str()))
            || self.prefixes.iter().any(|p| value.starts_with(p.as_str()))
            || self.suffixes.iter().any(|s| value.ends_with(s.as_str()))
            || self.regexes.iter().any(|r| r.is_match(value))
    }
}

/// A glob over a domain's labels (`*.example.com`, `**.example.com`, `mail?.example.com`,
/// `{a,b}.example.com`, `[ab].example.com`).
#[derive(Debug, Clone)]
pub struct DomainPattern(Regex);

impl DomainPattern {
    /// The pattern of this glob.
    ///
    /// # Errors
    /// [`PolicyError::Domain`] for a glob with an unclosed `[` or `{`.
    pub fn new(glob: &str) -> Result<Self, PolicyError> {
        let invalid = || PolicyError::Domain(glob.to_owned());
        let mut regex = String::from("^");
        let mut chars = glob.chars().peekable();
        let mut in_braces = false;
        while let Some(c) = chars.next() {
            match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    regex.push_str(".*");
                }
                '*' => regex.push_str("[^.]*"),
                '?' => regex.push_str("[^.]"),
                '[' => {
                    regex.push('[');
                    if chars.peek() == Some(&'!') {
                        chars.next();
                        regex.push('^');
                    }
                    loop {
                        match chars.next().ok_or_else(invalid)? {
                            ']' => break,
                            // A range stays a range; anything else is itself, so the
                            // class cannot take on the regex's own set syntax.
                            '-' => regex.push('-'),
                            other => regex.push_str(&regex::escape(&other.to_string())),
                        }
                    }
                    regex.push(']');
                }
                '{' if in_braces => return Err(invalid()),
                '{' => {
                    in_braces = true;
                    regex.push_str("(?:");
                }
                ',' if in_braces => regex.push('|'),
                '}' if in_braces => {
                    in_braces = false;
                    regex.push(')');
                }
                other => regex.push_str(&regex::escape(&other.to_string())),
            }
        }
        if in_braces {
            return Err(invalid());
        }
        regex.push('$');
        Regex::new(&regex).map(Self).map_err(|_| invalid())
    }

    /// Whether `domain` matches, whole.
    #[must_use]
    pub fn matches(&self, domain: &str) -> bool {
        self.0.is_match(domain)
    }
}

/// What dynamic client registration may relax (`policy.data.client_registration`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // MAS's switches, one each.
pub struct ClientRegistrationRules {
    /// URIs may be plain `http`, or on a loopback host (`allow_insecure_uris`).
    pub allow_insecure_uris: bool,
    /// Redirect, logo, terms and policy URIs may be on other hosts than `client_uri`
    /// (`allow_host_mismatch`).
    pub allow_host_mismatch: bool,
    /// `client_uri` may be left out (`allow_missing_client_uri`). As in MAS, this also
    /// lifts the host checks.
    pub allow_missing_client_uri: bool,
}

impl ClientRegistrationRules {
    /// Whether URIs must be on the host of `client_uri`.
    #[must_use]
    pub fn hosts_checked(self) -> bool {
        !self.allow_host_mismatch && !self.allow_missing_client_uri
    }
}

/// What a new password must hold (`policy.data.passwords`), beside
/// `passwords.minimum_complexity`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // One switch per rule.
pub struct PasswordRules {
    /// The fewest characters.
    pub min_length: usize,
    /// A lowercase letter is needed.
    pub require_lowercase: bool,
    /// An uppercase letter is needed.
    pub require_uppercase: bool,
    /// A digit is needed.
    pub require_number: bool,
}

/// Why the policy refuses something, with MAS's violation codes where it has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Only digits.
    UsernameAllNumeric,
    /// Matched by `registration.banned_usernames`.
    UsernameBanned,
    /// Not matched by `registration.allowed_usernames`.
    UsernameNotAllowed,
    /// The domain is not matched by `allowed_domains`.
    EmailDomainNotAllowed,
    /// The domain is matched by `banned_domains`.
    EmailDomainBanned,
    /// Not matched by `emails.allowed_addresses`.
    EmailNotAllowed,
    /// Matched by `emails.banned_addresses`.
    EmailBanned,
    /// Shorter than `passwords.min_length`.
    PasswordTooShort(usize),
    /// No lowercase letter.
    PasswordNeedsLowercase,
    /// No uppercase letter.
    PasswordNeedsUppercase,
    /// No digit.
    PasswordNeedsNumber,
    /// The client's address or user agent is in `requester`.
    RequesterBanned,
}

impl Violation {
    /// MAS's code for it (the password rules have none there, and get their own).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::UsernameAllNumeric => "username-all-numeric",
            Self::UsernameBanned => "username-banned",
            Self::UsernameNotAllowed => "username-not-allowed",
            Self::EmailDomainNotAllowed => "email-domain-not-allowed",
            Self::EmailDomainBanned => "email-domain-banned",
            Self::EmailNotAllowed => "email-not-allowed",
            Self::EmailBanned => "email-banned",
            Self::PasswordTooShort(_) => "password-too-short",
            Self::PasswordNeedsLowercase => "password-no-lowercase",
            Self::PasswordNeedsUppercase => "password-no-uppercase",
            Self::PasswordNeedsNumber => "password-no-number",
            Self::RequesterBanned => "requester-banned",
        }
    }

    /// What a person is told.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Self::UsernameAllNumeric => {
                "A username needs at least one character other than a digit.".to_owned()
            }
            Self::UsernameBanned | Self::UsernameNotAllowed => {
                "This username is not allowed here.".to_owned()
            }
            Self::EmailDomainNotAllowed | Self::EmailDomainBanned => {
                "Addresses of this domain are not allowed here.".to_owned()
            }
            Self::EmailNotAllowed | Self::EmailBanned => {
                "This email address is not allowed here.".to_owned()
            }
            Self::PasswordTooShort(n) => format!("A password needs at least {n} characters."),
            Self::PasswordNeedsLowercase => "A password needs a lowercase letter.".to_owned(),
            Self::PasswordNeedsUppercase => "A password needs an uppercase letter.".to_owned(),
            Self::PasswordNeedsNumber => "A password needs a digit.".to_owned(),
            Self::RequesterBanned => "This is not allowed from where you are.".to_owned(),
        }
    }
}

/// Every rule of `policy.data`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Usernames that may request admin rights, whatever their account's flag
    /// (`admin_users`).
    pub admin_users: Vec<String>,
    /// `client_registration`.
    pub client_registration: ClientRegistrationRules,
    /// `registration.allowed_usernames`: when set, only these may register.
    pub allowed_usernames: Option<StringMatch>,
    /// `registration.banned_usernames`.
    pub banned_usernames: Option<StringMatch>,
    /// `emails.allowed_addresses`: when set, only these may be used.
    pub allowed_addresses: Option<StringMatch>,
    /// `emails.banned_addresses`.
    pub banned_addresses: Option<StringMatch>,
    /// `allowed_domains`: when set, only addresses of these domains.
    pub allowed_domains: Option<Vec<DomainPattern>>,
    /// `banned_domains`.
    pub banned_domains: Vec<DomainPattern>,
    /// `passwords`.
    pub passwords: PasswordRules,
    /// `requester.banned_ips`.
    pub banned_networks: Vec<ipnet::IpNet>,
    /// `requester.banned_user_agents`.
    pub banned_user_agents: Option<StringMatch>,
}

/// Parses `requester.banned_ips` entries: an address or a network.
///
/// # Errors
/// [`PolicyError::Network`] for an entry that is neither.
pub fn networks(entries: &[String]) -> Result<Vec<ipnet::IpNet>, PolicyError> {
    entries
        .iter()
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map(canonical)
                .map_err(|_| PolicyError::Network(entry.clone()))
        })
        .collect()
}

/// A network written in the IPv4-mapped IPv6 form (`::ffff:192.0.2.0/120`) as the IPv4
/// network it means, since addresses are compared as IPv4 when they carry one.
fn canonical(net: ipnet::IpNet) -> ipnet::IpNet {
    match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, ipnet::IpNet::V4),
            None => net,
        },
        other => other,
    }
}

/// Parses domain globs.
///
/// # Errors
/// [`PolicyError::Domain`] for a glob that does not translate.
pub fn domains(globs: &[String]) -> Result<Vec<DomainPattern>, PolicyError> {
    globs.iter().map(|g| DomainPattern::new(g)).collect()
}

impl Policy {
    /// Why `username` may not register, if it may not.
    #[must_use]
    pub fn check_username(&self, username: &str) -> Vec<Violation> {
        let mut found = Vec::new();
        if !username.is_empty() && username.bytes().all(|b| b.is_ascii_digit()) {
            found.push(Violation::UsernameAllNumeric);
        }
        if self
            .banned_usernames
            .as_ref()
            .is_some_and(|m| m.matches(username))
        {
            found.push(Violation::UsernameBanned);
        }
        if self
            .allowed_usernames
            .as_ref()
            .is_some_and(|m| !m.matches(username))
        {
            found.push(Violation::UsernameNotAllowed);
        }
        found
    }

    /// Why `email` may not be used (at registration or on the account page), if it may
    /// not.
    #[must_use]
    pub fn check_email(&self, email: &str) -> Vec<Violation> {
        let mut found = Vec::new();
        let domain = match email.split('@').collect::<Vec<_>>().as_slice() {
            [_, domain] => Some(*domain),
            _ => None,
        };
        if let Some(allowed) = &self.allowed_domains
            && !domain.is_some_and(|d| allowed.iter().any(|p| p.matches(d)))
        {
            found.push(Violation::EmailDomainNotAllowed);
        }
        if domain.is_some_and(|d| self.banned_domains.iter().any(|p| p.matches(d))) {
            found.push(Violation::EmailDomainBanned);
        }
        if self
            .allowed_addresses
            .as_ref()
            .is_some_and(|m| !m.matches(email))
        {
            found.push(Violation::EmailNotAllowed);
        }
        if self
            .banned_addresses
            .as_ref()
            .is_some_and(|m| m.matches(email))
        {
            found.push(Violation::EmailBanned);
        }
        found
    }

    /// Why `password` may not be set, if it may not (beyond its strength, which
    /// `passwords.minimum_complexity` rules).
    #[must_use]
    pub fn check_password(&self, password: &str) -> Vec<Violation> {
        let rules = self.passwords;
        let mut found = Vec::new();
        if password.chars().count() < rules.min_length {
            found.push(Violation::PasswordTooShort(rules.min_length));
        }
        if rules.require_lowercase && !password.chars().any(char::is_lowercase) {
            found.push(Violation::PasswordNeedsLowercase);
        }
        if rules.require_uppercase && !password.chars().any(char::is_uppercase) {
            found.push(Violation::PasswordNeedsUppercase);
        }
        if rules.require_number && !password.chars().any(|c| c.is_ascii_digit()) {
            found.push(Violation::PasswordNeedsNumber);
        }
        found
    }

    /// Whether a request from `ip` with `user_agent` is turned away (`requester`).
    #[must_use]
    pub fn is_requester_banned(&self, ip: Option<IpAddr>, user_agent: Option<&str>) -> bool {
        ip.is_some_and(|ip| {
            let ip = ip.to_canonical();
            self.banned_networks.iter().any(|n| n.contains(&ip))
        }) || user_agent.is_some_and(|ua| {
            self.banned_user_agents
                .as_ref()
                .is_some_and(|m| m.matches(ua))
        })
    }

    /// Whether `user` may request an admin scope: their account's flag, or a name in
    /// `admin_users`.
    #[must_use]
    pub fn may_request_admin(&self, user: &User) -> bool {
        user.can_request_admin || self.admin_users.contains(&user.username)
    }

    /// Whether `user` may hold a session of `scope` now: admin scopes need the right to
    /// request one, checked again at every use, since it can be taken away.
    #[must_use]
    pub fn may_hold(&self, user: &User, scope: &str) -> bool {
        self.may_request_admin(user) || !scope.split(' ').any(mas_data_model::is_admin_scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(f: impl FnOnce(&mut StringLists)) -> StringMatch {
        let mut lists = StringLists::default();
        f(&mut lists);
        StringMatch::new(lists).unwrap()
    }

    #[test]
    fn string_constraints_match_as_mas_does() {
        let m = lists(|l| {
            l.literals = vec!["admin".into()];
            l.substrings = vec!["matrix".into()];
            l.regexes = vec!["^bot[0-9]+$".into(), "x{3}".into()];
            l.prefixes = vec!["_".into()];
            l.suffixes = vec!["-test".into()];
        });
        for yes in [
            "admin",
            "mymatrixname",
            "bot42",
            "aaxxxbb",
            "_hidden",
            "alice-test",
        ] {
            assert!(m.matches(yes), "{yes}");
        }
        // Case-sensitive, literals exact, regexes only as anchored as written.
        for no in [
            "Admin",
            "administrator",
            "bot42a",
            "MATRIX",
            "hidden_",
            "test-alice",
        ] {
            assert!(!m.matches(no), "{no}");
        }
        let bad = StringMatch::new(StringLists {
            regexes: vec!["(".into()],
            ..StringLists::default()
        });
        assert!(matches!(bad, Err(PolicyError::Regex { .. })));
    }

    #[test]
    fn domain_globs_stay_within_labels_unless_doubled() {
        let one = DomainPattern::new("*.element.io").unwrap();
        assert!(one.matches("staging.element.io"));
        assert!(!one.matches("element.io"));
        assert!(!one.matches("a.b.element.io"));
        assert!(!one.matches("staging.element.io.evil.example"));
        let any = DomainPattern::new("**.element.io").unwrap();
        assert!(any.matches("a.b.element.io"));
        assert!(
            DomainPattern::new("mail?.example.com")
                .unwrap()
                .matches("mail1.example.com")
        );
        let set = DomainPattern::new("{a,b}.example.com").unwrap();
        assert!(set.matches("b.example.com") && !set.matches("c.example.com"));
        let class = DomainPattern::new("[!x]y.example.com").unwrap();
        assert!(class.matches("ay.example.com") && !class.matches("xy.example.com"));
        // Dots and other characters are literal.
        assert!(
            !DomainPattern::new("example.com")
                .unwrap()
                .matches("examplexcom")
        );
        assert!(DomainPattern::new("{a,b.example.com").is_err());
        assert!(
            DomainPattern::new("{a,{b,c}}.example.com").is_err(),
            "no nesting"
        );
        let range = DomainPattern::new("mx[0-9].example.com").unwrap();
        assert!(range.matches("mx7.example.com") && !range.matches("mxa.example.com"));
        // Regex set syntax inside a class is taken literally.
        let literal = DomainPattern::new("[&~].example.com").unwrap();
        assert!(literal.matches("&.example.com") && !literal.matches("a.example.com"));
        assert!(DomainPattern::new("[ab.example.com").is_err());
    }

    #[test]
    fn usernames_are_checked_against_both_lists_and_the_ban_wins() {
        let policy = Policy {
            allowed_usernames: Some(lists(|l| l.prefixes = vec!["team-".into()])),
            banned_usernames: Some(lists(|l| l.literals = vec!["team-admin".into()])),
            ..Policy::default()
        };
        assert!(policy.check_username("team-alice").is_empty());
        assert_eq!(
            policy.check_username("alice"),
            [Violation::UsernameNotAllowed]
        );
        assert_eq!(
            policy.check_username("team-admin"),
            [Violation::UsernameBanned]
        );
        assert_eq!(
            Policy::default().check_username("12345"),
            [Violation::UsernameAllNumeric]
        );
        assert!(Policy::default().check_username("alice").is_empty());
    }

    #[test]
    fn emails_are_checked_by_domain_and_address() {
        let policy = Policy {
            allowed_domains: Some(
                domains(&["example.com".into(), "*.example.org".into()]).unwrap(),
            ),
            banned_domains: domains(&["spam.example.org".into()]).unwrap(),
            banned_addresses: Some(lists(|l| l.prefixes = vec!["noreply@".into()])),
            ..Policy::default()
        };
        assert!(policy.check_email("alice@example.com").is_empty());
        assert!(policy.check_email("bob@team.example.org").is_empty());
        assert_eq!(
            policy.check_email("carol@elsewhere.net"),
            [Violation::EmailDomainNotAllowed]
        );
        assert_eq!(
            policy.check_email("dan@spam.example.org"),
            [Violation::EmailDomainBanned]
        );
        assert_eq!(
            policy.check_email("noreply@example.com"),
            [Violation::EmailBanned]
        );
        assert_eq!(
            policy.check_email("not-an-address"),
            [Violation::EmailDomainNotAllowed]
        );
        let only = Policy {
            allowed_addresses: Some(lists(|l| l.suffixes = vec!["@corp.example".into()])),
            ..Policy::default()
        };
        assert_eq!(
            only.check_email("eve@example.com"),
            [Violation::EmailNotAllowed]
        );
        assert!(only.check_email("eve@corp.example").is_empty());
    }

    #[test]
    fn password_rules_name_each_missing_kind() {
        let policy = Policy {
            passwords: PasswordRules {
                min_length: 12,
                require_lowercase: true,
                require_uppercase: true,
                require_number: true,
            },
            ..Policy::default()
        };
        assert!(policy.check_password("Correct horse 42").is_empty());
        assert_eq!(
            policy.check_password("short"),
            [
                Violation::PasswordTooShort(12),
                Violation::PasswordNeedsUppercase,
                Violation::PasswordNeedsNumber
            ]
        );
        assert!(Policy::default().check_password("x").is_empty());
    }

    #[test]
    fn requesters_are_banned_by_network_or_user_agent() {
        let policy = Policy {
            banned_networks: networks(&["192.0.2.0/24".into(), "2001:db8::1".into()]).unwrap(),
            banned_user_agents: Some(lists(|l| l.substrings = vec!["EvilBot".into()])),
            ..Policy::default()
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(policy.is_requester_banned(ip("192.0.2.7"), None));
        assert!(policy.is_requester_banned(ip("::ffff:192.0.2.7"), None));
        let mapped = Policy {
            banned_networks: networks(&["::ffff:198.51.100.0/120".into()]).unwrap(),
            ..Policy::default()
        };
        assert!(
            mapped.is_requester_banned(ip("198.51.100.3"), None),
            "written mapped"
        );
        assert!(policy.is_requester_banned(ip("2001:db8::1"), None));
        assert!(!policy.is_requester_banned(ip("198.51.100.1"), Some("Firefox")));
        assert!(policy.is_requester_banned(None, Some("Mozilla EvilBot/1.0")));
        assert!(networks(&["not-an-ip".into()]).is_err());
    }

    #[test]
    fn admin_users_may_request_admin_without_the_flag() {
        let user = |name: &str, flag: bool| User {
            id: ulid::Ulid::nil(),
            username: name.to_owned(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            locked_at: None,
            deactivated_at: None,
            can_request_admin: flag,
        };
        let policy = Policy {
            admin_users: vec!["root".into()],
            ..Policy::default()
        };
        assert!(policy.may_request_admin(&user("root", false)));
        assert!(policy.may_request_admin(&user("flagged", true)));
        assert!(!policy.may_request_admin(&user("alice", false)));
        assert!(
            !policy.may_request_admin(&user("Root", false)),
            "exact names"
        );
        assert!(policy.may_hold(&user("alice", false), "openid urn:matrix:client:api:*"));
        assert!(!policy.may_hold(&user("alice", false), "openid urn:mas:admin"));
        assert!(policy.may_hold(&user("root", false), "urn:synapse:admin:*"));
    }
}
