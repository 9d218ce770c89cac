//! The admin API (resource `adminapi`): `/api/admin/v1/*` in MAS's shapes, for tokens
//! carrying `urn:mas:admin`. Its OpenAPI 3.1 document is generated from the handlers'
//! annotations and served at `/api/spec.json`, with a page that reads it at `/api/doc/`.

mod common;
mod emails;
mod personal;
mod registration_tokens;
mod sessions;
mod site;
mod upstream;
mod users;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;

pub(crate) use self::common::AdminError;
use crate::AppState;

/// The routes of the API, and its document as generated from them.
fn parts() -> (Router<AppState>, Value) {
    let (router, api) = OpenApiRouter::<AppState>::new()
        .merge(users::routes())
        .merge(emails::routes())
        .merge(sessions::routes())
        .merge(personal::routes())
        .merge(upstream::routes())
        .merge(registration_tokens::routes())
        .merge(site::routes())
        .split_for_parts();
    let document = match serde_json::to_value(&api) {
        Ok(document) => finish_document(document),
        Err(error) => {
            tracing::error!(%error, "cannot render the admin API's document");
            Value::Null
        }
    };
    (router, document)
}

/// The document's parts no annotation carries: its title, how to authenticate, and the
/// errors every operation may answer.
fn finish_document(mut document: Value) -> Value {
    document["info"] = json!({
        "title": "Matrix authentication service admin API",
        "description": "Manage users, their email addresses and sessions. Every call needs an access token with the `urn:mas:admin` scope.",
        "version": env!("CARGO_PKG_VERSION"),
    });
    document["servers"] = json!([{ "url": "/" }]);
    document["security"] = json!([{ "bearer": [common::ADMIN_SCOPE] }]);
    document["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An access token with the `urn:mas:admin` scope: from the client_credentials grant of a client listed in `policy.data.admin_clients`, from a person who may request admin, or a personal access token.",
        },
    });
    let error = json!({ "$ref": "#/components/schemas/ErrorResponse" });
    let answer = |description: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": error.clone() } },
        })
    };
    add_links(&mut document);
    if let Some(paths) = document["paths"].as_object_mut() {
        for operation in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut())
            .filter_map(Value::as_object_mut)
        {
            let Some(responses) = operation
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
            else {
                continue;
            };
            for (status, description) in [
                ("400", "The request is malformed"),
                ("401", "No valid access token"),
                ("403", "The access token lacks the urn:mas:admin scope"),
                (
                    "503",
                    "The database or the homeserver is unavailable; try again later",
                ),
            ] {
                responses
                    .entry(status)
                    .or_insert_with(|| answer(description));
            }
        }
    }
    document
}

/// Operations whose answer (201, the created resource) gives the `id` of others
/// (OpenAPI links), so a client or a fuzzer can follow them.
const LINKS: &[(&str, &[&str])] = &[
    (
        "createUser",
        &[
            "getUser",
            "setUserPassword",
            "userSetAdmin",
            "lockUser",
            "unlockUser",
            "deactivateUser",
            "reactivateUser",
        ],
    ),
    ("addUserEmail", &["getUserEmail", "deleteUserEmail"]),
    (
        "addUpstreamOAuthLink",
        &["getUpstreamOAuthLink", "deleteUpstreamOAuthLink"],
    ),
    (
        "addUserRegistrationToken",
        &[
            "getUserRegistrationToken",
            "updateUserRegistrationToken",
            "revokeUserRegistrationToken",
            "unrevokeUserRegistrationToken",
        ],
    ),
    (
        "createPersonalSession",
        &[
            "getPersonalSession",
            "revokePersonalSession",
            "regeneratePersonalSession",
        ],
    ),
];

fn add_links(document: &mut Value) {
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for (from, targets) in LINKS {
        let Some(answer) = paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut())
            .find(|operation| operation["operationId"] == *from)
            .and_then(|operation| operation["responses"].get_mut("201"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let links = answer.entry("links").or_insert_with(|| json!({}));
        for to in *targets {
            links[*to] = json!({
                "operationId": to,
                "parameters": { "id": "$response.body#/data/id" },
            });
        }
        if *from == "createUser" {
            links["getUserByUsername"] = json!({
                "operationId": "getUserByUsername",
                "parameters": { "username": "$response.body#/data/attributes/username" },
            });
        }
    }
}

/// The document, rendered once.
static DOCUMENT: LazyLock<(Arc<[u8]>, Vec<DocOperation>)> = LazyLock::new(|| {
    let (_, document) = parts();
    let bytes = serde_json::to_vec_pretty(&document).unwrap_or_default();
    (bytes.into(), doc_operations(&document))
});

/// The router of the `adminapi` resource.
pub(crate) fn router() -> Router<AppState> {
    let (api, _) = parts();
    api.route("/api/spec.json", get(spec))
        .route("/api/doc/", get(doc))
        .route("/api/doc", get(doc_redirect))
}

async fn spec() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
        ],
        axum::body::Bytes::copy_from_slice(&DOCUMENT.0),
    )
        .into_response()
}

async fn doc_redirect() -> Response {
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, HeaderValue::from_static("doc/"))],
    )
        .into_response()
}

/// One operation as the documentation page lists it.
#[derive(Debug, Serialize)]
struct DocOperation {
    method: String,
    path: String,
    summary: String,
    description: String,
    parameters: Vec<DocParameter>,
    body: Option<String>,
    responses: Vec<(String, String)>,
}

/// One parameter of an operation.
#[derive(Debug, Serialize)]
struct DocParameter {
    name: String,
    location: String,
    description: String,
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn doc_operations(document: &Value) -> Vec<DocOperation> {
    let mut operations = Vec::new();
    let Some(paths) = document["paths"].as_object() else {
        return operations;
    };
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, operation) in item {
            let parameters = operation["parameters"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|p| DocParameter {
                            name: text(&p["name"]),
                            location: text(&p["in"]),
                            description: text(&p["description"]),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let body = operation["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|schema| {
                    let reference = schema
                        .get("$ref")
                        .or_else(|| schema.get("oneOf").and_then(|o| o[0].get("$ref")))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    reference.rsplit('/').next().unwrap_or_default().to_owned()
                });
            let responses = operation["responses"]
                .as_object()
                .map(|r| {
                    r.iter()
                        .map(|(status, answer)| (status.clone(), text(&answer["description"])))
                        .collect()
                })
                .unwrap_or_default();
            operations.push(DocOperation {
                method: method.to_uppercase(),
                path: path.clone(),
                summary: text(&operation["summary"]),
                description: text(&operation["description"]),
                parameters,
                body,
                responses,
            });
        }
    }
    operations
}

async fn doc(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    crate::human::render(
        StatusCode::OK,
        "api_doc.html",
        minijinja::context! {
            service_name => &*state.service_name,
            spec => state.page_path("/api/spec.json"),
            operations => &DOCUMENT.1,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_route_and_its_errors() {
        let (_, document) = parts();
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().unwrap();
        for path in [
            "/api/admin/v1/users",
            "/api/admin/v1/users/{id}",
            "/api/admin/v1/users/by-username/{username}",
            "/api/admin/v1/users/{id}/set-password",
            "/api/admin/v1/user-emails/{id}",
            "/api/admin/v1/oauth2-sessions/{id}/finish",
            "/api/admin/v1/site-config",
        ] {
            assert!(paths.contains_key(path), "{path} is missing");
        }
        let list = &paths["/api/admin/v1/users"]["get"];
        assert_eq!(list["operationId"], "listUsers");
        assert_eq!(
            list["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorResponse"
        );
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"page[first]") && names.contains(&"filter[status]"));
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for schema in [
            "ULID",
            "User",
            "ErrorResponse",
            "UserEmail",
            "OAuth2Session",
        ] {
            assert!(schemas.contains_key(schema), "schema {schema} is missing");
        }
    }
}
