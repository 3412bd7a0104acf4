//! `GET /api/payments/{id}/events`: a payment's status as Server-Sent Events.
//!
//! Event `paymentUpdate`, `id:` = the payment's version (so a reconnecting `EventSource` sends
//! `Last-Event-ID` and gets only what is newer), data = [`PaymentUpdate`]. The stream subscribes
//! to the bus before it reads the current state, so a change committed in between is not lost;
//! updates arriving out of order (two writers, two nodes) are dropped by version. It sends a
//! comment every 15 s to keep proxies from closing it, and ends after the payment's final state.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use jinliu_domain::PaymentId;

use super::{Notice, PaymentUpdate, Subscription};
use crate::http::error::ApiError;
use crate::http::payments::ClientSecretQuery;
use crate::http::watch::Watcher;
use crate::state::AppState;

/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The payment's live status (same access as `GET /api/payments/{id}`).
#[utoipa::path(get, path = "/api/payments/{id}/events", tag = "payments",
    params(("id" = String, Path, description = "pay_…"),
        ("clientSecret" = Option<String>, Query, description = "The payment's client secret (browsers; EventSource cannot send headers)"),
        ("Last-Event-ID" = Option<i64>, Header, description = "The last version received; only newer states are sent")),
    responses((status = 200, description = "`text/event-stream` of `paymentUpdate` events `{ paymentId, orderId, status, amount, currency, version, updatedAt }`, `id:` = version; ends after the final state", content_type = "text/event-stream"),
        (status = 404, description = "No such payment, or a wrong client secret")))]
pub async fn stream(
    State(app): State<AppState>,
    watcher: Watcher,
    Path(id): Path<String>,
    Query(q): Query<ClientSecretQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let watched = watcher.payment(&app, &id, q.client_secret.as_deref()).await?;
    let id = watched.payment().id.clone();
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let sub = app.realtime.subscribe(id.as_str());
    // Read again after subscribing: what was read for the access check may already be stale.
    let current = app.store.payment_unscoped(&id).await?.map(|p| PaymentUpdate::of(&p));
    let watch = Watch {
        app,
        id,
        sub,
        last: last_seen,
        first: current,
        done: false,
    };
    let mut resp = Sse::new(events(watch))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // nginx buffers proxied responses unless told not to; an event must not wait in a buffer.
    resp.headers_mut()
        .insert("x-accel-buffering", axum::http::HeaderValue::from_static("no"));
    Ok(resp)
}

struct Watch {
    app: AppState,
    id: PaymentId,
    sub: Subscription,
    /// The newest version the client has.
    last: i64,
    /// The state read at connect, sent first if newer than `last`.
    first: Option<PaymentUpdate>,
    done: bool,
}

impl Watch {
    /// The next state to send, or `None` when the stream is over.
    async fn next(&mut self) -> Option<PaymentUpdate> {
        if self.done {
            return None;
        }
        if let Some(first) = self.first.take() {
            if first.is_final() && first.version <= self.last {
                // The client already has the final state.
                return None;
            }
            if let Some(u) = self.accept(first) {
                return Some(u);
            }
        }
        loop {
            let update = match self.sub.recv().await? {
                Notice::Update(u) => (*u).clone(),
                Notice::Resync => match self.app.store.payment_unscoped(&self.id).await {
                    Ok(Some(p)) => PaymentUpdate::of(&p),
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::warn!(error = %e, payment = %self.id, "could not re-read a watched payment; ending the stream");
                        return None;
                    }
                },
            };
            if let Some(u) = self.accept(update) {
                return Some(u);
            }
        }
    }

    /// `u` if it is newer than what the client has; marks the stream done at the final state.
    fn accept(&mut self, u: PaymentUpdate) -> Option<PaymentUpdate> {
        if u.version <= self.last {
            return None;
        }
        self.last = u.version;
        self.done = u.is_final();
        Some(u)
    }
}

fn events(watch: Watch) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    futures::stream::unfold(watch, |mut w| async move {
        let u = w.next().await?;
        let event = Event::default()
            .event("paymentUpdate")
            .id(u.version.to_string())
            .json_data(&u)
            .unwrap_or_else(|_| Event::default().comment("unrenderable update"));
        Some((Ok(event), w))
    })
}
