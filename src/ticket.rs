//! Where a third-party platform keeps its `component_verify_ticket`.
//!
//! WeChat pushes the ticket to the platform's authorisation-event URL every ten minutes; it
//! is valid twelve hours, there is no API to fetch it, and without it the platform cannot get
//! its `component_access_token` (docs/platforms.md §2.3). A [`TicketStore`] keeps the latest one,
//! shared by every instance of a service when backed by Redis or a database.
//!
//! Give it to the layer serving the platform's authorisation-event URL with
//! [`WechatLayer::ticket_store`](crate::WechatLayer::ticket_store): each verified ticket push
//! is stored before the handler runs, and a store failure is answered 503 without calling
//! the handler, so WeChat pushes the ticket again instead of it being lost. The handler still
//! gets the push (as [`ComponentEvent::VerifyTicket`]) and answers `success` (`()`).
//!
//! ```
//! use std::sync::Arc;
//! use http::Request;
//! use tower::service_fn;
//! use wechat_push::ticket::{MemoryTicketStore, TicketStore};
//! use wechat_push::{EncodingAesKey, Endpoint, Message, WechatLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tickets = Arc::new(MemoryTicketStore::new());
//! let key = EncodingAesKey::new("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")?;
//! let endpoint = Endpoint::component("AAAAA", key, "wx134c8103faa5a59e")?;
//! let auth_url = WechatLayer::from_endpoint(endpoint)
//!     .ticket_store(tickets.clone())
//!     .layer(service_fn(|_: Request<Message>| async { Ok::<_, std::convert::Infallible>(()) }));
//! # let _ = auth_url;
//! // Later, to fetch the component_access_token:
//! let ticket = tickets.get("wx134c8103faa5a59e").await?;
//! # assert!(ticket.is_none());
//! # Ok(())
//! # }
//! ```
//!
//! Without the layer (another framework, pushes from a queue), a handler can do the same
//! with [`TicketStore::remember`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::message::{ComponentEvent, Kind, Message};
use crate::rejection::Rejection;
use crate::store::{BoxFuture, StoreError};

/// How long a ticket is valid after its `CreateTime`: 12 hours.
pub const TICKET_VALIDITY_SECS: u64 = 12 * 60 * 60;

/// A `component_verify_ticket` and the `CreateTime` of the push that carried it. `Debug`
/// does not print the ticket.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyTicket {
    value: String,
    create_time: u64,
}

impl VerifyTicket {
    /// A ticket pushed at `create_time` (Unix seconds).
    pub fn new(value: impl Into<String>, create_time: u64) -> Self {
        Self {
            value: value.into(),
            create_time,
        }
    }

    /// The ticket from a `component_verify_ticket` push, when `message` is one.
    pub fn from_message(message: &Message) -> Option<Self> {
        match message.kind() {
            Kind::Component(ComponentEvent::VerifyTicket { ticket, .. }) => {
                Some(Self::new(ticket.clone(), message.create_time()))
            }
            _ => None,
        }
    }

    /// The ticket itself.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The `CreateTime` of the push that carried it, Unix seconds.
    pub fn create_time(&self) -> u64 {
        self.create_time
    }

    /// Whether it is still valid at `now` (Unix seconds): less than 12 hours old.
    pub fn is_valid_at(&self, now: u64) -> bool {
        now < self.create_time.saturating_add(TICKET_VALIDITY_SECS)
    }
}

impl fmt::Debug for VerifyTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyTicket")
            .field("value", &"<redacted>")
            .field("create_time", &self.create_time)
            .finish()
    }
}

/// Keeps the latest `component_verify_ticket` of each third-party platform, by component
/// AppID. Object-safe with boxed futures, like the crate's other stores.
///
/// Contract, in the terms of a Redis implementation:
///
/// * [`get`](Self::get): the stored ticket (`GET`), or `None`.
/// * [`set`](Self::set): store `ticket` unless the stored one has a later `create_time` (a
///   retried, older push must not replace a newer ticket): a compare-and-set, a small Lua
///   script, with a TTL of at least [`TICKET_VALIDITY_SECS`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a ticket store",
    label = "not a `TicketStore`",
    note = "pass `MemoryTicketStore::new()`, `RedisStores::ticket_store()` (feature `redis`), an `Arc` of a store, or a type implementing `wechat_push::ticket::TicketStore`"
)]
pub trait TicketStore: Send + Sync + fmt::Debug {
    /// The latest ticket stored for `component_app_id`.
    fn get<'a>(
        &'a self,
        component_app_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<VerifyTicket>, StoreError>>;

    /// Stores `ticket` for `component_app_id`, unless a later one is stored.
    fn set<'a>(
        &'a self,
        component_app_id: &'a str,
        ticket: VerifyTicket,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Stores the ticket `message` carries, when it is a `component_verify_ticket` push, under
    /// its `AppId` (the message's [`to_user`](Message::to_user)); returns whether it was one.
    fn remember<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            match VerifyTicket::from_message(message) {
                Some(ticket) => self.set(message.to_user(), ticket).await.map(|()| true),
                None => Ok(false),
            }
        })
    }
}

/// A shared store is a store: `layer.ticket_store(tickets.clone())` with `tickets` an
/// `Arc<MemoryTicketStore>` or an `Arc<dyn TicketStore>`.
impl<T: TicketStore + ?Sized> TicketStore for Arc<T> {
    fn get<'a>(
        &'a self,
        component_app_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<VerifyTicket>, StoreError>> {
        (**self).get(component_app_id)
    }

    fn set<'a>(
        &'a self,
        component_app_id: &'a str,
        ticket: VerifyTicket,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).set(component_app_id, ticket)
    }
}

/// The layer's step before the handler for a push carrying a ticket: keep it in `store`, a
/// failure refusing the push (503, so that WeChat pushes the ticket again). `None` for any
/// other push.
pub(crate) fn keep(
    store: &Arc<dyn TicketStore>,
    message: &Message,
) -> Option<BoxFuture<'static, Result<(), Rejection>>> {
    let ticket = VerifyTicket::from_message(message)?;
    let (store, app_id) = (store.clone(), message.to_user().to_owned());
    Some(Box::pin(async move {
        store
            .set(&app_id, ticket)
            .await
            .map_err(|_| Rejection::TicketStore)
    }))
}

/// A [`TicketStore`] in this process's memory: one ticket per component AppID.
#[derive(Debug, Default)]
pub struct MemoryTicketStore {
    tickets: Mutex<HashMap<String, VerifyTicket>>,
}

impl MemoryTicketStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TicketStore for MemoryTicketStore {
    fn get<'a>(
        &'a self,
        component_app_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<VerifyTicket>, StoreError>> {
        let tickets = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        let ticket = tickets.get(component_app_id).cloned();
        Box::pin(async move { Ok(ticket) })
    }

    fn set<'a>(
        &'a self,
        component_app_id: &'a str,
        ticket: VerifyTicket,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut tickets = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        match tickets.get(component_app_id) {
            Some(stored) if stored.create_time > ticket.create_time => {}
            _ => {
                tickets.insert(component_app_id.to_owned(), ticket);
            }
        }
        drop(tickets);
        Box::pin(async { Ok(()) })
    }
}
