//! RFC 9728 protected resource metadata for the hub (spec "Protected Resource Metadata").
use http::{Response, StatusCode};

use super::{response, AppState, HubBody, RequestContext};

pub const AUTHORIZATION_DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

pub fn handle(state: &AppState, ctx: &RequestContext) -> Response<HubBody> {
    let mut doc = serde_json::Map::new();
    doc.insert("resource".into(), ctx.audience.clone().into());
    let servers: Vec<serde_json::Value> = state
        .config
        .issuers
        .iter()
        .filter(|i| i.authorization_server)
        .map(|i| i.id.clone().into())
        .collect();
    if !servers.is_empty() {
        doc.insert("authorization_servers".into(), servers.into());
    }
    doc.insert(
        "authorization_details_types_supported".into(),
        serde_json::json!([AUTHORIZATION_DETAIL_TYPE]),
    );
    doc.insert(
        "bearer_methods_supported".into(),
        serde_json::json!(["header"]),
    );
    doc.insert(
        "mercure_cookie".into(),
        state.config.cookie_name.clone().into(),
    );
    if state.hub.subscription_events() {
        doc.insert("mercure_subscriptions".into(), true.into());
    }
    let body = serde_json::Value::Object(doc).to_string() + "\n";
    response::full(StatusCode::OK, "application/json", body)
}
