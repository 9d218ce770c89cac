//! One error type for pages: storage and homeserver failures become the error page, so
//! page handlers use `?` as the API handlers do.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mas_matrix::HomeserverError;
use mas_storage::StorageError;

use crate::AppState;

/// Why a page could not be served as asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PageError {
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The homeserver failed or refused.
    #[error(transparent)]
    Homeserver(#[from] HomeserverError),
    /// A request no page can take (a malformed form), with what is wrong with it.
    #[error("invalid request: {1}")]
    Invalid(StatusCode, String),
    /// A page that answers the request instead (a form shown again with its error, a
    /// redirect to sign in first): lets helpers return early through `?`.
    #[error("answered with another page")]
    Answer(Response),
}

/// What a page handler returns.
pub(crate) type PageResult = Result<Response, PageError>;

/// The error page a failure asks for; [`render_error_pages`] renders it, as only it has
/// the state the page needs.
#[derive(Debug, Clone)]
struct ErrorPage {
    title: String,
    detail: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, detail) = match self {
            Self::Answer(response) => return response,
            Self::Invalid(status, detail) => {
                let mut response = status.into_response();
                response.extensions_mut().insert(ErrorPage {
                    title: tr!("common-invalid-request"),
                    detail,
                });
                return response;
            }
            Self::Storage(StorageError::Unavailable) => (
                StatusCode::SERVICE_UNAVAILABLE,
                tr!("error-unavailable"),
                tr!("error-unavailable-detail"),
            ),
            Self::Storage(error) => {
                tracing::error!(%error, "storage error on a page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    tr!("common-something-went-wrong"),
                    tr!("common-please-try-again"),
                )
            }
            Self::Homeserver(error) if error.is_transient() => {
                tracing::warn!(%error, "the homeserver failed a page's request");
                (
                    StatusCode::BAD_GATEWAY,
                    tr!("error-homeserver-down"),
                    tr!("error-homeserver-down-detail"),
                )
            }
            Self::Homeserver(error) => {
                tracing::error!(%error, "the homeserver refused a page's request");
                (
                    StatusCode::BAD_GATEWAY,
                    tr!("error-homeserver-refused"),
                    tr!("error-homeserver-refused-detail"),
                )
            }
        };
        let mut response = status.into_response();
        response
            .extensions_mut()
            .insert(ErrorPage { title, detail });
        response
    }
}

impl From<Response> for PageError {
    fn from(response: Response) -> Self {
        Self::Answer(response)
    }
}

/// Renders the error page a [`PageError`] asked for; other responses pass unchanged.
pub(crate) async fn render_error_pages(
    State(state): State<AppState>,
    response: Response,
) -> Response {
    match response.extensions().get::<ErrorPage>().cloned() {
        Some(page) => super::error_page(&state, response.status(), &page.title, &page.detail),
        None => response,
    }
}
