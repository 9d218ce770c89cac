//! What every admin API route shares: the caller's authentication, errors in MAS's
//! `{"errors": [{"title"}]}` shape, the JSON:API-like envelopes, cursor pagination, and
//! extractors that turn bad input into a 400 instead of axum's plain-text rejections.

use std::borrow::Cow;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mas_oauth_core::ErrorCode;
use mas_oauth_core::tokens::{Asker, introspect};
use mas_storage::{Page, Pagination, StorageError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use ulid::Ulid;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::AppState;

/// The scope a token needs to call the admin API.
pub(crate) const ADMIN_SCOPE: &str = "urn:mas:admin";

/// The largest page a list returns.
pub(crate) const MAX_PAGE_SIZE: usize = 1000;

/// The page size when the request names none.
const DEFAULT_PAGE_SIZE: usize = 10;

/// An admin API error: its status and the one-line title the body carries.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    /// No token, or one that is not active.
    #[error("{0}")]
    Unauthorized(String),
    /// A token without the admin scope, or an action the configuration forbids.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// Malformed input: a parameter, an ID, a body.
    #[error("{0}")]
    BadRequest(String),
    /// The change conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// A known path with another method.
    #[error("this endpoint does not accept that HTTP method")]
    MethodNotAllowed,
    /// The database or the homeserver cannot be reached now.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of ours, logged where it happened.
    #[error("internal error")]
    Internal,
}

impl From<StorageError> for AdminError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable => {
                Self::Unavailable("the database is unavailable; try again later".to_owned())
            }
            StorageError::Conflict(what) => Self::Conflict(what),
            other => {
                tracing::error!(error = %other, "admin API: storage failure");
                Self::Internal
            }
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = Json(ErrorResponse {
            errors: vec![ErrorTitle {
                title: self.to_string(),
            }],
        });
        if status == StatusCode::UNAUTHORIZED {
            return (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
        (status, body).into_response()
    }
}

/// Every admin API error body: a list of errors, each with a title.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorResponse {
    /// The errors.
    errors: Vec<ErrorTitle>,
}

/// One error.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorTitle {
    /// What went wrong, for people.
    title: String,
}

/// The result of an admin API handler.
pub(crate) type AdminResult<T> = Result<T, AdminError>;

/// Who called: a token carrying `urn:mas:admin`. Extracting it authenticates the call
/// and logs it with its caller.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    /// The user the token acts for, if any (a client's own token has none).
    pub(crate) username: Option<String>,
    /// That user's ID.
    pub(crate) user_id: Option<Ulid>,
    /// The client the token was issued to (personal tokens name none).
    pub(crate) client_id: Option<String>,
}

impl Admin {
    /// Who owns what the caller creates: its user, else its client.
    pub(crate) fn owner(&self) -> Option<mas_data_model::PersonalSessionOwner> {
        use mas_data_model::PersonalSessionOwner;
        self.user_id.map(PersonalSessionOwner::User).or_else(|| {
            self.client_id
                .as_deref()
                .and_then(|c| c.parse().ok())
                .map(PersonalSessionOwner::Client)
        })
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AdminResult<Self> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AdminError::Unauthorized(
                    "an access token is required (Authorization: Bearer)".to_owned(),
                )
            })?;
        let mut repo = state.repos.reader().await?;
        // The homeserver's view: OAuth 2.0 access tokens and personal tokens answer, with
        // the owner's right to an admin scope checked again as of now.
        let answer = introspect(
            repo.as_mut(),
            state.clock.as_ref(),
            &state.policy,
            token,
            Some("access_token"),
            Asker::Homeserver,
        )
        .await
        .map_err(|e| {
            if e.code == ErrorCode::TemporarilyUnavailable {
                AdminError::Unavailable("the database is unavailable; try again later".to_owned())
            } else {
                tracing::error!(error = %e.description, "admin API: token check failed");
                AdminError::Internal
            }
        })?;
        drop(repo);
        if !answer.active {
            return Err(AdminError::Unauthorized(
                "the access token is not valid".to_owned(),
            ));
        }
        let scoped = answer
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|s| s == ADMIN_SCOPE));
        if !scoped {
            return Err(AdminError::Forbidden(format!(
                "the access token lacks the `{ADMIN_SCOPE}` scope"
            )));
        }
        let admin = Self {
            user_id: answer.sub.as_deref().and_then(|s| s.parse().ok()),
            username: answer.username,
            client_id: answer.client_id,
        };
        tracing::info!(
            admin.user = admin.username.as_deref().unwrap_or("-"),
            admin.client = admin.client_id.as_deref().unwrap_or("-"),
            method = %parts.method,
            path = parts.uri.path(),
            "admin API call"
        );
        Ok(admin)
    }
}

/// A ULID in the documents: a string of 26 Crockford base-32 characters.
pub(crate) struct UlidSchema;

impl PartialSchema for UlidSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .title(Some("ULID"))
            .description(Some("A ULID (https://github.com/ulid/spec)"))
            .pattern(Some("^[0123456789ABCDEFGHJKMNPQRSTVWXYZ]{26}$"))
            .examples([serde_json::json!("01ARZ3NDEKTSV4RRFFQ69G5FAV")])
            .into()
    }
}

impl ToSchema for UlidSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ULID")
    }
}

/// The one parameter of a route's path, as text: one that does not decode is a 400 in
/// the API's shape, not axum's plain-text rejection.
pub(crate) struct TextPath(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for TextPath {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> AdminResult<Self> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| AdminError::BadRequest(e.body_text()))?;
        Ok(Self(raw))
    }
}

/// The ID in a route's path: a malformed one is a 400.
pub(crate) struct IdPath(pub(crate) Ulid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> AdminResult<Self> {
        let TextPath(raw) = TextPath::from_request_parts(parts, state).await?;
        parse_id(&raw).map(Self)
    }
}

/// Reads an ID given by the caller.
pub(crate) fn parse_id(raw: &str) -> AdminResult<Ulid> {
    // Only the canonical spelling: IDs are compared and shown as stored.
    if raw.len() == 26
        && raw
            .bytes()
            .all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b))
        && let Ok(id) = Ulid::from_string(raw)
    {
        return Ok(id);
    }
    let shown: String = raw.chars().take(40).collect();
    Err(AdminError::BadRequest(format!(
        "`{shown}` is not a valid ID (a ULID)"
    )))
}

/// Reads a JSON body that must be an object: serde would also read a struct from an
/// array of its fields, which no document allows.
fn object_body<T: DeserializeOwned>(bytes: &[u8]) -> AdminResult<T> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| AdminError::BadRequest(format!("invalid JSON body: {e}")))?;
    if !value.is_object() {
        return Err(AdminError::BadRequest(
            "invalid JSON body: expected an object".to_owned(),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| AdminError::BadRequest(format!("invalid JSON body: {e}")))
}

/// A JSON object body (`Content-Type: application/json`).
pub(crate) struct Body<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = AdminError;

    async fn from_request(request: Request, state: &S) -> AdminResult<Self> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json") || v.ends_with("+json")
            });
        if !json {
            return Err(AdminError::BadRequest(
                "expected a JSON body (Content-Type: application/json)".to_owned(),
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| AdminError::BadRequest(e.body_text()))?;
        object_body(&bytes).map(Self)
    }
}

/// A JSON object body that may be left out entirely (or be `null`): `T::default()`.
pub(crate) struct OptionalBody<T>(pub(crate) T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalBody<T> {
    type Rejection = AdminError;

    async fn from_request(request: Request, state: &S) -> AdminResult<Self> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| AdminError::BadRequest(e.body_text()))?;
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() || trimmed == b"null" {
            return Ok(Self(T::default()));
        }
        object_body(&bytes).map(Self)
    }
}

/// A count or a number of seconds in a body: JSON Schema counts `321.0` as an integer
/// too, which serde's integers refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Whole(pub(crate) u32);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        // Checked to be a whole number from 0 to u32::MAX before the cast.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = number.as_u64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
                .map(|f| f as u64)
        });
        whole
            .and_then(|w| u32::try_from(w).ok())
            .map(Self)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{number} is not a whole number from 0 to {}",
                    u32::MAX
                ))
            })
    }
}

/// Whether a list answers with its total count (`count`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum IncludeCount {
    /// The items and their total count (the default).
    #[default]
    True,
    /// The items only.
    False,
    /// The total count only.
    Only,
}

/// The pagination parameters of every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// Only items before this ID.
    #[serde(rename = "page[before]")]
    #[param(value_type = Option<UlidSchema>)]
    before: Option<String>,
    /// Only items after this ID.
    #[serde(rename = "page[after]")]
    #[param(value_type = Option<UlidSchema>)]
    after: Option<String>,
    /// The first N items (default 10, at most 1000). With `page[last]` too, the last of
    /// those.
    #[serde(rename = "page[first]")]
    #[param(minimum = 1, maximum = 1000)]
    first: Option<usize>,
    /// The last N items (at most 1000).
    #[serde(rename = "page[last]")]
    #[param(minimum = 1, maximum = 1000)]
    last: Option<usize>,
    /// Whether to include the total count: `true` (the default), `false` or `only`.
    #[param(inline)]
    count: Option<IncludeCount>,
}

/// A list request: its page, its filters `F`, and what the links of the answer repeat.
pub(crate) struct ListQuery<F> {
    /// Which page.
    pub(crate) pagination: Pagination,
    /// With both `page[first]` and `page[last]`: how many of the last of the first
    /// items are kept.
    trim_to_last: Option<usize>,
    /// Whether the total count is wanted.
    pub(crate) count: IncludeCount,
    /// The filters.
    pub(crate) filter: F,
    /// The filters as given, re-encoded, for the links.
    filter_query: String,
    /// The page as given, re-encoded, for the `self` link.
    page_query: String,
    /// Whether a filter can match nothing stored (so nothing is read).
    matches_nothing: bool,
}

fn bad_query(error: impl std::fmt::Display) -> AdminError {
    AdminError::BadRequest(format!("invalid query parameters: {error}"))
}

impl<F: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ListQuery<F> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> AdminResult<Self> {
        let raw = parts.uri.query().unwrap_or_default();
        let mut page = url::form_urlencoded::Serializer::new(String::new());
        let mut filter = url::form_urlencoded::Serializer::new(String::new());
        let mut matches_nothing = false;
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            // No stored text holds a NUL character (and PostgreSQL refuses one in a
            // query): a filter with one matches nothing.
            matches_nothing |= key.starts_with("filter[") && value.contains('\0');
            if key.starts_with("page[") || key == "count" {
                page.append_pair(&key, &value);
            } else if key.starts_with("filter[") {
                filter.append_pair(&key, &value);
            } else {
                let shown: String = key.chars().take(40).collect();
                return Err(bad_query(format_args!("unknown parameter `{shown}`")));
            }
        }
        let (page_query, filter_query) = (page.finish(), filter.finish());
        let params: PageParams = serde_html_form::from_str(&page_query).map_err(bad_query)?;
        let filter: F = serde_html_form::from_str(&filter_query).map_err(bad_query)?;
        Ok(Self {
            pagination: params.pagination()?,
            trim_to_last: params.first.and(params.last),
            count: params.count.unwrap_or_default(),
            filter,
            filter_query,
            page_query,
            matches_nothing,
        })
    }
}

impl PageParams {
    fn pagination(&self) -> AdminResult<Pagination> {
        let size = |n: usize| {
            if (1..=MAX_PAGE_SIZE).contains(&n) {
                Ok(n)
            } else {
                Err(bad_query(format_args!(
                    "a page holds 1 to {MAX_PAGE_SIZE} items"
                )))
            }
        };
        self.last.map(size).transpose()?;
        let mut pagination = match (self.first, self.last) {
            // Both: the last of the first items, as cursor connections define it; the
            // trimming is done on the answer (`ListQuery::respond`).
            (Some(n), _) => Pagination::first(size(n)?),
            (None, Some(n)) => Pagination::last(size(n)?),
            (None, None) => Pagination::first(DEFAULT_PAGE_SIZE),
        };
        if let Some(before) = &self.before {
            pagination = pagination.before(parse_id(before)?);
        }
        if let Some(after) = &self.after {
            pagination = pagination.after(parse_id(after)?);
        }
        Ok(pagination)
    }
}

/// Reads what a [`ListQuery`] asks for: `$list` (an expression of `$page`) for the page,
/// unless only the count is wanted, and `$count` for the total, if wanted.
macro_rules! listing {
    ($query:expr, |$page:ident| $list:expr, $count:expr $(,)?) => {{
        if $query.matches_nothing() {
            return Ok($query.respond($crate::admin::common::Listing::empty(&$query)));
        }
        let page = match $query.page() {
            Some($page) => Some($list.await?),
            None => None,
        };
        let count = if $query.counted() {
            Some($count.await?)
        } else {
            None
        };
        $crate::admin::common::Listing { page, count }
    }};
}
pub(crate) use listing;

/// A kind of resource the admin API serves.
pub(crate) trait Resource: Serialize + ToSchema {
    /// Its `type`.
    const KIND: &'static str;
    /// The path of its collection, such as `/api/admin/v1/users`.
    const PATH: &'static str;
    /// Its ID.
    fn id(&self) -> Ulid;
}

/// The links of one resource.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SelfLinks {
    /// Where the resource is.
    #[serde(rename = "self")]
    this: String,
}

/// Where an item sits in a list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ResourceMeta {
    /// The item's place in the list.
    page: ResourceCursor,
}

/// An item's cursor.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ResourceCursor {
    /// Pass it as `page[after]` or `page[before]` to page from here.
    cursor: String,
}

/// One resource with its type, ID, attributes and links.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SingleResource<T> {
    /// The kind of resource.
    #[serde(rename = "type")]
    kind: &'static str,
    /// Its ID.
    #[schema(value_type = UlidSchema)]
    id: Ulid,
    /// What it holds.
    attributes: T,
    /// Where it is.
    links: SelfLinks,
    /// Its cursor, in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<ResourceMeta>,
}

impl<T: Resource> SingleResource<T> {
    fn new(item: T, in_list: bool) -> Self {
        let id = item.id();
        Self {
            kind: T::KIND,
            id,
            links: SelfLinks {
                this: format!("{}/{id}", T::PATH),
            },
            meta: in_list.then(|| ResourceMeta {
                page: ResourceCursor {
                    cursor: id.to_string(),
                },
            }),
            attributes: item,
        }
    }
}

/// The answer with one resource.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SingleResponse<T> {
    /// The resource.
    data: SingleResource<T>,
    /// Where it is.
    links: SelfLinks,
}

impl<T: Resource> SingleResponse<T> {
    /// Wraps one resource.
    pub(crate) fn new(item: T) -> Json<Self> {
        let data = SingleResource::new(item, false);
        let links = SelfLinks {
            this: data.links.this.clone(),
        };
        Json(Self { data, links })
    }
}

/// The total count of a list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaginationMeta {
    /// How many items match the filters.
    count: u64,
}

/// The links of a page.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaginationLinks {
    /// This page.
    #[serde(rename = "self")]
    this: String,
    /// The first page.
    first: String,
    /// The last page.
    last: String,
    /// The next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// The previous page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    prev: Option<String>,
}

/// The answer with a page of resources.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaginatedResponse<T> {
    /// The total count, unless `count=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<PaginationMeta>,
    /// The items, unless `count=only`.
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Vec<SingleResource<T>>>,
    /// Links to this page and its neighbours.
    links: PaginationLinks,
}

/// What a list handler hands over: the page (unless only the count is wanted) and the
/// count (if wanted).
pub(crate) struct Listing<T> {
    /// The page.
    pub(crate) page: Option<Page<T>>,
    /// The count.
    pub(crate) count: Option<u64>,
}

impl<T> Listing<T> {
    /// Converts every item.
    pub(crate) fn map<U>(self, f: impl FnMut(T) -> U) -> Listing<U> {
        Listing {
            page: self.page.map(|p| p.map(f)),
            count: self.count,
        }
    }

    /// A listing of nothing, for filters that match nothing stored here, shaped as
    /// `query` asks (items, count, or both).
    pub(crate) fn empty<F>(query: &ListQuery<F>) -> Self {
        Self {
            page: query.page().map(|_| Page {
                edges: Vec::new(),
                has_next_page: false,
                has_previous_page: false,
            }),
            count: query.counted().then_some(0),
        }
    }
}

impl<F> ListQuery<F> {
    /// The page to read, unless only the count is wanted.
    pub(crate) fn page(&self) -> Option<Pagination> {
        (self.count != IncludeCount::Only).then_some(self.pagination)
    }

    /// Whether a filter can match nothing stored.
    pub(crate) fn matches_nothing(&self) -> bool {
        self.matches_nothing
    }

    /// Whether the total count is wanted.
    pub(crate) fn counted(&self) -> bool {
        self.count != IncludeCount::False
    }

    /// The filters as given, then `page`, then `count` unless it is the default (so
    /// following a link asks the same question).
    fn link(&self, page: &str) -> String {
        let count = match self.count {
            IncludeCount::True => "",
            IncludeCount::False => "count=false",
            IncludeCount::Only => "count=only",
        };
        [self.filter_query.as_str(), page, count]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Shapes a listing as the answer, with its links.
    pub(crate) fn respond<T: Resource>(&self, listing: Listing<T>) -> Json<PaginatedResponse<T>> {
        // With `page[first]` and `page[last]`, pages hold the `last` count.
        let size = self.trim_to_last.unwrap_or(self.pagination.count);
        let at = |query: String| {
            if query.is_empty() {
                T::PATH.to_owned()
            } else {
                format!("{}?{query}", T::PATH)
            }
        };
        let mut next = None;
        let mut prev = None;
        let data = listing.page.map(|mut page| {
            if let Some(keep) = self.trim_to_last
                && page.edges.len() > keep
            {
                page.edges.drain(..page.edges.len() - keep);
                page.has_previous_page = true;
            }
            if let (true, Some(last)) = (page.has_next_page, page.edges.last()) {
                next = Some(at(self.link(&format!(
                    "page%5Bafter%5D={}&page%5Bfirst%5D={size}",
                    last.id()
                ))));
            }
            if let (true, Some(first)) = (page.has_previous_page, page.edges.first()) {
                prev = Some(at(self.link(&format!(
                    "page%5Bbefore%5D={}&page%5Blast%5D={size}",
                    first.id()
                ))));
            }
            page.edges
                .into_iter()
                .map(|item| SingleResource::new(item, true))
                .collect()
        });
        let links = PaginationLinks {
            // The page as given holds its `count` already.
            this: at([self.filter_query.as_str(), self.page_query.as_str()]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("&")),
            first: at(self.link(&format!("page%5Bfirst%5D={size}"))),
            last: at(self.link(&format!("page%5Blast%5D={size}"))),
            next,
            prev,
        };
        Json(PaginatedResponse {
            meta: listing.count.map(|count| PaginationMeta { count }),
            data,
            links,
        })
    }
}
