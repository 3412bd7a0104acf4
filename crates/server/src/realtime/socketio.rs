//! The Socket.IO server at `/socket.io/` (socketioxide), compatible with seed 004's client:
//!
//! ```js
//! const socket = io('https://pay.example.com');
//! socket.on('paymentUpdate', (data) => { … });   // { paymentId, orderId, status, amount, currency, version, updatedAt }
//! socket.emit('joinPaymentRoom', paymentId);      // or { paymentId, clientSecret }
//! ```
//!
//! A join sends the payment's current state at once, then every change until the final state.
//! A bare payment id is accepted, as the seed sends it (payment ids are UUIDv7, 74 random bits); with
//! `{ paymentId, clientSecret }` the secret must match. An unknown payment or a wrong secret
//! answers an `error` event and joins nothing. Each join is a bus subscription owned by a task
//! that ends when the socket disconnects or the payment reaches its final state.

use std::sync::Arc;

use jinliu_domain::PaymentId;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{Data, SocketRef, State};
use socketioxide::layer::SocketIoLayer;
use tokio::sync::watch;

use super::{Notice, PaymentUpdate};
use crate::state::AppState;

/// Most payments one socket may follow at once.
pub const MAX_JOINS_PER_SOCKET: usize = 20;

/// The Socket.IO layer and its handle, with the `/` namespace's handlers registered.
pub fn layer(app: AppState) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder().with_state(app).build_layer();
    io.ns("/", on_connect);
    (layer, io)
}

async fn on_connect(s: SocketRef) {
    // Flips to true when the socket goes away; every join's task watches it.
    let (gone_tx, gone_rx) = watch::channel(false);
    let gone_tx = Arc::new(gone_tx);
    let joins = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    s.on_disconnect(move || {
        let gone_tx = gone_tx.clone();
        async move {
            let _ = gone_tx.send(true);
        }
    });
    s.on(
        "joinPaymentRoom",
        move |s: SocketRef, Data(d): Data<Value>, State(app): State<AppState>| {
            let (gone, joins) = (gone_rx.clone(), joins.clone());
            async move { join(s, d, app, gone, joins).await }
        },
    );
}

fn error(s: &SocketRef, message: &str) {
    let _ = s.emit(
        "error",
        &serde_json::json!({ "code": "payment_not_found", "message": message }),
    );
}

async fn join(
    s: SocketRef,
    d: Value,
    app: AppState,
    mut gone: watch::Receiver<bool>,
    joins: Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    let (id, secret) = match &d {
        Value::String(id) => (id.clone(), None),
        Value::Object(o) => (
            o.get("paymentId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            Some(
                o.get("clientSecret")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ),
        ),
        _ => (String::new(), None),
    };
    let Some(id) = PaymentId::parse(&id) else {
        return error(&s, "no such payment");
    };
    let payment = match app.store.payment_unscoped(&id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "could not read a payment for a Socket.IO join");
            let _ = s.emit(
                "error",
                &serde_json::json!({ "code": "internal_error", "message": "try again" }),
            );
            return;
        }
    };
    let allowed = match &secret {
        Some(secret) => crate::http::watch::public_payment(payment, None, secret),
        None => payment,
    };
    if allowed.is_none() {
        return error(&s, "no such payment");
    }
    if joins.fetch_add(1, Ordering::AcqRel) >= MAX_JOINS_PER_SOCKET {
        joins.fetch_sub(1, Ordering::AcqRel);
        let _ = s.emit(
            "error",
            &serde_json::json!({ "code": "too_many_rooms", "message": "leave a payment before joining more" }),
        );
        return;
    }
    // Subscribe first, then read, so a change committed in between is not lost.
    let mut sub = app.realtime.subscribe(id.as_str());
    let mut last = 0;
    let mut current = match app.store.payment_unscoped(&id).await {
        Ok(Some(p)) => Some(PaymentUpdate::of(&p)),
        _ => None,
    };
    loop {
        if let Some(u) = current.take()
            && u.version > last
        {
            last = u.version;
            if s.emit("paymentUpdate", &u).is_err() || u.is_final() {
                break;
            }
        }
        let notice = tokio::select! {
            n = sub.recv() => n,
            _ = gone.wait_for(|g| *g) => None,
        };
        current = match notice {
            Some(Notice::Update(u)) => Some((*u).clone()),
            Some(Notice::Resync) => match app.store.payment_unscoped(&id).await {
                Ok(Some(p)) => Some(PaymentUpdate::of(&p)),
                _ => break,
            },
            None => break,
        };
    }
    joins.fetch_sub(1, Ordering::AcqRel);
}
