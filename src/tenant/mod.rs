//! Tenants and who may do what in them.
//!
//! Every connection belongs to a tenant, assigned once at admission by the [`AuthProvider`]:
//! tenants are separate namespaces (sessions, subscriptions and retained messages of one never
//! meet another's). The provider also answers, per PUBLISH, SUBSCRIBE and will, whether the
//! authenticated client may use a topic. Today's provider admits everyone into the default tenant
//! ([`AllowAll`]); password files, webhooks and limits per tenant plug in here.

mod auth;

pub use auth::{Access, AllowAll, AuthDecision, AuthProvider, AuthRequest, Identity, DEFAULT_TENANT};
