//! The auth provider seam: authentication at admission, authorization per topic.
//!
//! Authentication runs exactly once per connection, on the shard that accepted it, before the
//! connection moves to its home shard (which depends on the tenant the provider assigns). It is
//! asynchronous so that a provider may ask a blocking backend (a password file being reloaded, an
//! HTTP webhook) on a thread of its own and answer over a channel; the shard never blocks on it.
//! Authorization is synchronous and cheap (called for every PUBLISH): a provider decides from
//! what it learnt at authentication, or from a cache.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use bytestring::ByteString;

use crate::protocol::ProtocolVersion;

/// The tenant every connection belongs to unless an auth provider assigns another.
pub const DEFAULT_TENANT: &str = "default";

/// What a client presented at CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// Client identifier as sent (may be empty: the broker assigns one later).
    pub client_id: &'a str,
    /// User name, if any.
    pub username: Option<&'a str>,
    /// Password, if any.
    pub password: Option<&'a Bytes>,
    /// Protocol version of the connection.
    pub protocol: ProtocolVersion,
    /// The peer's address, when known.
    pub peer: Option<std::net::SocketAddr>,
}

/// Who a connection is, once admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tenant namespace the client lives in.
    pub tenant: ByteString,
    /// The authenticated principal (a user name), if any.
    pub principal: Option<ByteString>,
}

/// A provider's answer to a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// Admitted as this identity.
    Allow(Identity),
    /// Refused: the credentials are wrong (CONNACK 0x86 / 3.x 0x04).
    #[expect(dead_code, reason = "the password-file and webhook providers (tenancy issue) refuse; allow-all never does")]
    BadCredentials,
    /// Refused: the client may not connect (CONNACK 0x87 / 3.x 0x05).
    #[expect(dead_code, reason = "the password-file and webhook providers (tenancy issue) refuse; allow-all never does")]
    NotAuthorized,
}

/// What an authorization is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Publishing to a topic (a PUBLISH, or a will when it is published).
    Publish,
    /// Subscribing to a filter.
    Subscribe,
}

/// The future of an authentication.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = AuthDecision> + 'a>>;

/// Authenticates connections and authorizes their topics. One instance per shard.
pub trait AuthProvider {
    /// Decides whether a CONNECT is admitted, and as whom. Called once per connection.
    fn authenticate<'a>(&'a self, request: AuthRequest<'a>) -> AuthFuture<'a>;
    /// Whether `identity` may use `topic` (a topic name, or a filter for [`Access::Subscribe`]).
    fn authorize(&self, identity: &Identity, access: Access, topic: &str) -> bool;
}

/// Admits everyone into the default tenant and allows every topic: the broker's behaviour
/// without authentication configured.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

impl AuthProvider for AllowAll {
    fn authenticate<'a>(&'a self, request: AuthRequest<'a>) -> AuthFuture<'a> {
        tracing::trace!(
            client = request.client_id,
            peer = ?request.peer,
            protocol = ?request.protocol,
            password = request.password.is_some(),
            "admitted without authentication"
        );
        let identity = Identity { tenant: ByteString::from_static(DEFAULT_TENANT), principal: request.username.map(ByteString::from) };
        Box::pin(std::future::ready(AuthDecision::Allow(identity)))
    }

    fn authorize(&self, _identity: &Identity, _access: Access, _topic: &str) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_all_admits_into_the_default_tenant_with_the_user_name_as_principal() {
        let p = AllowAll;
        let req = AuthRequest { client_id: "c", username: Some("alice"), password: None, protocol: ProtocolVersion::V5, peer: None };
        let decision = futures_lite::future::block_on(p.authenticate(req));
        let AuthDecision::Allow(id) = decision else { panic!("refused: {decision:?}") };
        assert_eq!(&*id.tenant, DEFAULT_TENANT);
        assert_eq!(id.principal.as_deref(), Some("alice"));
        assert!(p.authorize(&id, Access::Publish, "a/b") && p.authorize(&id, Access::Subscribe, "#"));
    }
}
