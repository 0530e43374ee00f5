//! Route announcements: telling the other shards that this shard gained its first, or lost its
//! last, subscriber of a filter.

use super::routes::Route;
use super::shard::Shard;
use super::shard_msg::ShardMsg;

impl Shard {
    /// Announces a route change to every other shard. Additions wait until every shard has applied
    /// them, so that a client that got its SUBACK receives messages published anywhere afterwards.
    pub async fn announce(&self, route: Route, add: bool) {
        if self.n < 2 {
            return;
        }
        if add {
            let (token, done) = self.peers.expect_acks(self.n - 1);
            for peer in self.peers.others() {
                self.peers.send_to(peer, ShardMsg::RouteAdd(Box::new((route.clone(), token)))).await;
            }
            done.notified().await;
        } else {
            for peer in self.peers.others() {
                self.peers.send_to(peer, ShardMsg::RouteRemove(Box::new(route.clone()))).await;
            }
        }
    }

    /// Applies another shard's route change.
    pub fn apply_remote_route(&self, route: &Route, add: bool) {
        self.routes.borrow_mut().apply_remote(route, add);
    }
}
