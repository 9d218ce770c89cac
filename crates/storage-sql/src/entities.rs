//! sea-orm entities, one per table. Columns mirror the migrations; conversion to domain
//! types happens in the repositories.

/// Declares an entity whose primary key is a ULID string `id`.
macro_rules! entity {
    ($module:ident, $table:literal, { $($field:ident : $ty:ty),* $(,)? }) => {
        pub(crate) mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key, auto_increment = false)]
                pub id: String,
                $(pub $field: $ty,)*
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

entity!(users, "users", {
    username: String,
    created_at: DateTimeUtc,
    locked_at: Option<DateTimeUtc>,
    deactivated_at: Option<DateTimeUtc>,
    can_request_admin: bool,
});

entity!(user_passwords, "user_passwords", {
    user_id: String,
    hashed_password: String,
    version: i32,
    upgraded_from_id: Option<String>,
    created_at: DateTimeUtc,
});

entity!(user_emails, "user_emails", {
    user_id: String,
    email: String,
    email_lower: String,
    created_at: DateTimeUtc,
});

entity!(user_email_authentications, "user_email_authentications", {
    user_id: String,
    browser_session_id: String,
    email: String,
    encrypted_code: String,
    created_at: DateTimeUtc,
    expires_at: DateTimeUtc,
    attempts: i32,
    completed_at: Option<DateTimeUtc>,
});

entity!(browser_sessions, "browser_sessions", {
    user_id: String,
    created_at: DateTimeUtc,
    finished_at: Option<DateTimeUtc>,
    user_agent: Option<String>,
    last_active_at: Option<DateTimeUtc>,
    last_active_ip: Option<String>,
});

entity!(browser_session_authentications, "browser_session_authentications", {
    browser_session_id: String,
    user_password_id: Option<String>,
    upstream_link_id: Option<String>,
    created_at: DateTimeUtc,
});

entity!(registration_tokens, "registration_tokens", {
    token: String,
    usage_limit: Option<i32>,
    times_used: i32,
    created_at: DateTimeUtc,
    last_used_at: Option<DateTimeUtc>,
    expires_at: Option<DateTimeUtc>,
    revoked_at: Option<DateTimeUtc>,
});

entity!(oauth2_clients, "oauth2_clients", {
    is_static: bool,
    auth_method: String,
    encrypted_secret: Option<String>,
    jwks: Option<String>,
    jwks_uri: Option<String>,
    redirect_uris: String,
    grant_types: String,
    name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    policy_uri: Option<String>,
    tos_uri: Option<String>,
    application_type: Option<String>,
    contacts: String,
    metadata: Option<String>,
    created_at: DateTimeUtc,
    first_used_at: Option<DateTimeUtc>,
});

entity!(oauth2_sessions, "oauth2_sessions", {
    user_id: Option<String>,
    browser_session_id: Option<String>,
    client_id: String,
    scope: String,
    created_at: DateTimeUtc,
    finished_at: Option<DateTimeUtc>,
    user_agent: Option<String>,
    last_active_at: Option<DateTimeUtc>,
    last_active_ip: Option<String>,
    human_name: Option<String>,
});

entity!(oauth2_authorization_grants, "oauth2_authorization_grants", {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    response_mode: String,
    response_type_id_token: bool,
    code_hash: Option<Vec<u8>>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    max_age: Option<i32>,
    login_hint: Option<String>,
    prompt: Option<String>,
    created_at: DateTimeUtc,
    fulfilled_at: Option<DateTimeUtc>,
    exchanged_at: Option<DateTimeUtc>,
    cancelled_at: Option<DateTimeUtc>,
    session_id: Option<String>,
});

entity!(oauth2_access_tokens, "oauth2_access_tokens", {
    session_id: String,
    token_hash: Vec<u8>,
    created_at: DateTimeUtc,
    expires_at: Option<DateTimeUtc>,
    revoked_at: Option<DateTimeUtc>,
    first_used_at: Option<DateTimeUtc>,
});

entity!(oauth2_refresh_tokens, "oauth2_refresh_tokens", {
    session_id: String,
    access_token_id: Option<String>,
    token_hash: Vec<u8>,
    created_at: DateTimeUtc,
    consumed_at: Option<DateTimeUtc>,
    revoked_at: Option<DateTimeUtc>,
    next_token_id: Option<String>,
});

entity!(oauth2_device_code_grants, "oauth2_device_code_grants", {
    client_id: String,
    scope: String,
    device_code_hash: Vec<u8>,
    user_code: String,
    created_at: DateTimeUtc,
    expires_at: DateTimeUtc,
    fulfilled_at: Option<DateTimeUtc>,
    rejected_at: Option<DateTimeUtc>,
    exchanged_at: Option<DateTimeUtc>,
    browser_session_id: Option<String>,
    session_id: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    last_polled_at: Option<DateTimeUtc>,
});

entity!(compat_sessions, "compat_sessions", {
    user_id: String,
    device_id: Option<String>,
    browser_session_id: Option<String>,
    created_at: DateTimeUtc,
    finished_at: Option<DateTimeUtc>,
    is_synapse_admin: bool,
    user_agent: Option<String>,
    last_active_at: Option<DateTimeUtc>,
    last_active_ip: Option<String>,
    human_name: Option<String>,
});

entity!(compat_access_tokens, "compat_access_tokens", {
    session_id: String,
    token_hash: Vec<u8>,
    created_at: DateTimeUtc,
    expires_at: Option<DateTimeUtc>,
});

entity!(compat_refresh_tokens, "compat_refresh_tokens", {
    session_id: String,
    access_token_id: String,
    token_hash: Vec<u8>,
    created_at: DateTimeUtc,
    consumed_at: Option<DateTimeUtc>,
});

entity!(compat_sso_logins, "compat_sso_logins", {
    redirect_uri: String,
    login_token_hash: Vec<u8>,
    created_at: DateTimeUtc,
    fulfilled_at: Option<DateTimeUtc>,
    exchanged_at: Option<DateTimeUtc>,
    session_id: Option<String>,
});

entity!(personal_sessions, "personal_sessions", {
    owner_user_id: String,
    owner_client_id: Option<String>,
    actor_user_id: String,
    human_name: String,
    scope: String,
    created_at: DateTimeUtc,
    revoked_at: Option<DateTimeUtc>,
    last_active_at: Option<DateTimeUtc>,
    last_active_ip: Option<String>,
});

entity!(personal_access_tokens, "personal_access_tokens", {
    session_id: String,
    token_hash: Vec<u8>,
    created_at: DateTimeUtc,
    expires_at: Option<DateTimeUtc>,
    revoked_at: Option<DateTimeUtc>,
});

entity!(upstream_oauth_providers, "upstream_oauth_providers", {
    ui_order: i32,
    issuer: Option<String>,
    human_name: Option<String>,
    client_id: String,
    encrypted_client_secret: Option<String>,
    config: String,
    created_at: DateTimeUtc,
    disabled_at: Option<DateTimeUtc>,
});

entity!(upstream_oauth_links, "upstream_oauth_links", {
    provider_id: String,
    user_id: Option<String>,
    subject: String,
    human_account_name: Option<String>,
    created_at: DateTimeUtc,
});

entity!(upstream_oauth_authorization_sessions, "upstream_oauth_authorization_sessions", {
    provider_id: String,
    state: String,
    nonce: String,
    code_verifier: Option<String>,
    next: String,
    created_at: DateTimeUtc,
    completed_at: Option<DateTimeUtc>,
    link_id: Option<String>,
    id_token: Option<String>,
    claims: Option<String>,
    sid: Option<String>,
    consumed_at: Option<DateTimeUtc>,
    browser_session_id: Option<String>,
});

entity!(oauth2_client_assertion_jtis, "oauth2_client_assertion_jtis", {
    client_id: String,
    jti_hash: Vec<u8>,
    expires_at: DateTimeUtc,
});

entity!(queue_jobs, "queue_jobs", {
    queue: String,
    payload: String,
    state: String,
    attempts: i32,
    scheduled_at: DateTimeUtc,
    lease_expires_at: Option<DateTimeUtc>,
    created_at: DateTimeUtc,
    completed_at: Option<DateTimeUtc>,
    last_error: Option<String>,
});

entity!(user_registrations, "user_registrations", {
    username: String,
    email: String,
    password_version: i32,
    password_hash: String,
    registration_token_id: Option<String>,
    terms_url: Option<String>,
    encrypted_code: String,
    attempts: i32,
    created_at: DateTimeUtc,
    expires_at: DateTimeUtc,
    completed_at: Option<DateTimeUtc>,
});

entity!(user_recovery_tickets, "user_recovery_tickets", {
    user_id: String,
    email: String,
    ticket_hash: Vec<u8>,
    created_at: DateTimeUtc,
    expires_at: DateTimeUtc,
    consumed_at: Option<DateTimeUtc>,
});

entity!(user_terms, "user_terms", {
    user_id: String,
    terms_url: String,
    created_at: DateTimeUtc,
});
