//! [`RedisTicketStore`]: a third-party platform's `component_verify_ticket` in Redis.

use std::sync::Arc;

use redis::Script;

use super::connection::Connection;
use crate::store::{BoxFuture, StoreError};
use crate::ticket::{TicketStore, VerifyTicket, TICKET_VALIDITY_SECS};

/// Stores `{create_time}:{ticket}` unless the stored ticket has a later `create_time` (a
/// retried, older push must not replace a newer ticket); the key lives as long as a ticket is
/// valid.
const SET: &str = r"
local v = redis.call('GET', KEYS[1])
if v then
  local t = tonumber(string.match(v, '^(%d+):'))
  if t and t > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'EX', ARGV[3])
return 1
";

/// A [`TicketStore`] in Redis, shared by every instance on it: the ticket one instance
/// received is the one every instance fetches the component token with. Get one from
/// [`RedisStores::ticket_store`](super::RedisStores::ticket_store).
///
/// Key `{prefix}ticket:{component AppID}`, value `{create_time}:{ticket}`, expiring
/// [`TICKET_VALIDITY_SECS`] after it was stored.
#[derive(Clone)]
pub struct RedisTicketStore {
    conn: Arc<Connection>,
    script: Arc<Script>,
}

impl std::fmt::Debug for RedisTicketStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTicketStore")
            .field("prefix", &self.conn.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisTicketStore {
    pub(super) fn new(conn: Arc<Connection>) -> Self {
        RedisTicketStore {
            conn,
            script: Arc::new(Script::new(SET)),
        }
    }
}

impl TicketStore for RedisTicketStore {
    fn get<'a>(
        &'a self,
        component_app_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<VerifyTicket>, StoreError>> {
        Box::pin(self.conn.get_parsed("ticket", component_app_id, parse))
    }

    fn set<'a>(
        &'a self,
        component_app_id: &'a str,
        ticket: VerifyTicket,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = self.conn.key("ticket", component_app_id);
            let _stored: i64 = self
                .conn
                .run(|mut c| async move {
                    self.script
                        .key(key)
                        .arg(ticket.create_time())
                        .arg(ticket.value())
                        .arg(TICKET_VALIDITY_SECS)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(())
        })
    }
}

/// `{create_time}:{ticket}`.
fn parse(stored: &str) -> Option<VerifyTicket> {
    let (create_time, value) = stored.split_once(':')?;
    Some(VerifyTicket::new(value, create_time.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_parse_back() {
        let ticket = parse("1413192760:ticket@@@lEHjsBEi:with:colons").unwrap();
        assert_eq!(ticket.create_time(), 1413192760);
        assert_eq!(ticket.value(), "ticket@@@lEHjsBEi:with:colons");
        assert!(parse("no time").is_none());
        assert!(parse("x:ticket").is_none());
    }
}
