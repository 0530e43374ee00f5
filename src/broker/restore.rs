//! Start-up: rebuilding a shard's in-memory state from its stores before it accepts clients.
//!
//! Retained messages go back into the retained index; each stored session comes back offline,
//! with its subscriptions in the route table (announced to the other shards), and with its will
//! and expiry timers resumed from the wall-clock time its last connection ended, so that a
//! restart neither forgets a session nor extends its life.

use std::rc::Rc;

use super::client::Client;
use super::lifecycle;
use super::routes::{split_filter, LocalSub};
use super::shard::Shard;
use super::stats::ShardCounters;
use crate::session::{wall_ns, Session};
use crate::store::StoreError;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Restores what the shard's stores kept.
pub async fn restore(shard: &Rc<Shard>) -> Result<(), StoreError> {
    let retained = shard.retained.borrow_mut().load()?;
    ShardCounters::add(&shard.counters().retained, retained as u64);
    let images = shard.keeper.store().load()?;
    let now = wall_ns();
    let mut announcements = Vec::new();
    let mut restored = Vec::new();
    for image in images {
        let session = Session::restore(shard.new_uid(), image, shard.keeper.clone());
        let (tenant, client_id, uid) = (session.tenant().clone(), session.client_id().clone(), session.uid());
        let client = Client::shared(session);
        shard.clients.insert((tenant.clone(), client_id.clone()), client.clone());
        ShardCounters::add(&shard.counters().sessions, 1);
        let subs: Vec<_> = client.borrow().session().subscriptions().map(|(f, s)| (f.clone(), *s)).collect();
        for (filter, sub) in subs {
            let (group, real) = split_filter(&filter);
            // Subscribed before anything published from now on.
            let local = LocalSub { client: client.clone(), uid, client_id: client_id.clone(), options: sub.options, id: sub.id, since_ns: 0 };
            if let Some(route) = shard.routes.borrow_mut().add_local(&tenant, &real, group.as_ref(), local, shard.id) {
                announcements.push(route);
            }
        }
        restored.push(client);
    }
    for route in announcements {
        shard.announce(route, true).await;
    }
    for client in restored {
        // A session whose connection was up at the crash lost it then, as far as anyone can tell.
        let gone_ns = client.borrow().session().disconnected_ns().unwrap_or(now);
        let elapsed = u32::try_from(now.saturating_sub(gone_ns) / NS_PER_SEC).unwrap_or(u32::MAX);
        lifecycle::after_disconnect(shard, &client, elapsed).await;
    }
    Ok(())
}
