//! Admission: from a freshly accepted connection to an admitted client on its home shard.
//!
//! Runs once per connection, on the shard that accepted it: read until a whole CONNECT is
//! buffered (or the connect timeout passes), decode and validate it, check the broker-wide
//! connection limit, ask the auth provider who the client is (which decides its tenant), assign a
//! client id when it sent none, and find its home shard. A client at home elsewhere is handed
//! over with what admission decided ([`Admitted`]), so the home shard never decodes the CONNECT
//! or asks the auth provider again.

use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use bytestring::ByteString;
use ratatosk_io::Transport;

use super::attach;
use super::closing::{refuse_for_capacity, write_connack};
use super::shard::Shard;
use super::shard_msg::{Admitted, Handoff, ShardMsg};
use crate::protocol::{self, reason, Connect, DecodeError, Packet, ProtocolVersion};
use crate::tenant::{Access, AuthDecision, AuthRequest};

/// Reads while waiting for CONNECT.
const READ_CHUNK: usize = 1024;


/// Serves a freshly accepted connection: admits it, then serves it here or hands it to its home
/// shard.
pub async fn accept<T: Transport>(shard: Rc<Shard>, mut transport: T) {
    let mut buf = BytesMut::new();
    let limit = Duration::from_secs(shard.config.limits.connect_timeout);
    let max = shard.config.limits.max_packet_size;
    let got = glommio::timer::timeout(limit, async { read_whole_packet(&mut transport, &mut buf, max).await.map_err(glommio::GlommioError::IoError) }).await;
    // Boxed: everything after CONNECT (admission, attach, the connection's loop) makes a far
    // larger future than the wait for it, which is all a connection that has not sent CONNECT
    // yet should cost (a storm of slow handshakes would otherwise hold kilobytes each).
    Box::pin(admit_and_serve(shard, transport, buf, got.is_ok())).await;
}

/// Admits a client whose first packet is in `buf` (`complete` unless it timed out or is
/// malformed) and serves it here or hands it to its home shard.
async fn admit_and_serve<T: Transport>(shard: Rc<Shard>, mut transport: T, mut buf: BytesMut, complete: bool) {
    let max = shard.config.limits.max_packet_size;
    if !complete {
        // Nothing valid within the connect timeout, or the first packet is malformed before it
        // is complete: close without a word [MQTT-3.1.0-1], but answer a v5 client with CONNACK.
        tracing::debug!("connection closed before a valid CONNECT");
        if let Some(code) = connect_reject_code(&buf, max) {
            write_connack(&mut transport, ProtocolVersion::V5, code).await;
        }
        return;
    }
    let Some(admitted) = Box::pin(admit(&shard, &mut transport, &mut buf)).await else { return };
    let home = shard.placement.shard_of(&admitted.identity.tenant, &admitted.client_id);
    if home == shard.id {
        attach::serve(shard, transport, admitted, buf).await;
        return;
    }
    match transport.detach() {
        Ok(detached) => {
            let h = Handoff { transport: detached, admitted, rest: buf.to_vec() };
            shard.peers.send_to(home, ShardMsg::Handoff(Box::new(h))).await;
        }
        Err(e) => tracing::warn!(error = %e, "could not hand a connection to its home shard"),
    }
}

/// Reads until `buf` holds a whole packet. The first byte is awaited without a buffer, so a
/// connection that has sent nothing yet holds none.
async fn read_whole_packet<T: Transport>(transport: &mut T, buf: &mut BytesMut, max: u32) -> std::io::Result<()> {
    if buf.is_empty() {
        let mut first = [0u8; 1];
        if transport.read(&mut first).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.reserve(READ_CHUNK);
        buf.extend_from_slice(&first);
    }
    loop {
        match protocol::check(buf, max) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
        }
        let start = buf.len();
        buf.resize(start + READ_CHUNK, 0);
        let r = transport.read(&mut buf[start..]).await;
        buf.truncate(start + *r.as_ref().unwrap_or(&0));
        if r? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Decodes and validates the CONNECT at the head of `buf` and authenticates the client; `None`
/// when it was refused (with a CONNACK where one is due).
async fn admit<T: Transport>(shard: &Shard, transport: &mut T, buf: &mut BytesMut) -> Option<Admitted> {
    let is_v5 = declares_v5(buf);
    let limits = &shard.config.limits;
    let mut connect = match protocol::decode(buf, None, limits.max_packet_size) {
        Ok(Some(Packet::Connect(c))) => c,
        Ok(_) => return None,
        Err(DecodeError::UnsupportedProtocolVersion { level, .. }) => {
            // [MQTT-3.1.2-2] answer with "unacceptable protocol version" and close.
            let (v, code) = if level == 5 { (ProtocolVersion::V5, reason::UNSUPPORTED_PROTOCOL_VERSION) } else { (ProtocolVersion::V3_1_1, reason::v3::UNACCEPTABLE_PROTOCOL_VERSION) };
            write_connack(transport, v, code).await;
            return None;
        }
        Err(e) => {
            tracing::debug!(error = %e, "malformed CONNECT");
            if is_v5 {
                write_connack(transport, ProtocolVersion::V5, e.reason_code()).await;
            }
            return None;
        }
    };
    let v = connect.protocol;
    if let Err(code) = validate_connect(&connect, limits) {
        write_connack(transport, v, code).await;
        return None;
    }
    if shard.stats.total(|c| &c.clients_connected) >= limits.max_connections as u64 {
        refuse_for_capacity(shard, transport, v, "limits.max_connections").await;
        return None;
    }
    let request = AuthRequest {
        client_id: &connect.client_id,
        username: connect.username.as_deref(),
        password: connect.password.as_ref(),
        protocol: v,
        peer: transport.peer_addr(),
    };
    let identity = match shard.auth.authenticate(request).await {
        AuthDecision::Allow(identity) => identity,
        refusal => {
            let code = match (refusal, v.is_v5()) {
                (AuthDecision::BadCredentials, true) => reason::BAD_USER_NAME_OR_PASSWORD,
                (AuthDecision::BadCredentials, false) => reason::v3::BAD_USER_NAME_OR_PASSWORD,
                (_, true) => reason::NOT_AUTHORIZED,
                (_, false) => reason::v3::NOT_AUTHORIZED,
            };
            tracing::debug!(client = %connect.client_id, code, "authentication refused");
            write_connack(transport, v, code).await;
            return None;
        }
    };
    if let Some(w) = &connect.will {
        if !shard.auth.authorize(&identity, Access::Publish, &w.topic) {
            // The will could never be published; refuse now rather than drop it silently later.
            write_connack(transport, v, if v.is_v5() { reason::NOT_AUTHORIZED } else { reason::v3::NOT_AUTHORIZED }).await;
            return None;
        }
    }
    // Copied out of the read buffer: the id lives as long as the session, and a slice of the
    // buffer would keep all of it (a KiB or more) alive for each idle connection.
    let (client_id, assigned) = if connect.client_id.is_empty() { (assign_client_id(shard, &identity.tenant), true) } else { (ByteString::from(&*connect.client_id), false) };
    if let Some(w) = connect.will.as_mut() {
        w.topic = ByteString::from(&*w.topic);
        w.payload = bytes::Bytes::copy_from_slice(&w.payload);
    }
    Some(Admitted { identity, client_id, assigned, connect })
}

/// The v5 CONNACK code for a CONNECT that could not be decoded, when the bytes show a v5 client.
fn connect_reject_code(buf: &[u8], max: u32) -> Option<u8> {
    let mut tmp = BytesMut::from(buf);
    match protocol::decode(&mut tmp, None, max) {
        Err(e) if declares_v5(buf) => Some(e.reason_code()),
        _ => None,
    }
}

/// Whether a CONNECT's variable header carries protocol level 5 (looked at without decoding).
fn declares_v5(buf: &[u8]) -> bool {
    // Fixed header: type byte + 1..4 length bytes; then 0x00 0x04 "MQTT" level.
    let mut i = 1;
    while i < buf.len() && i < 5 && buf[i] & 0x80 != 0 {
        i += 1;
    }
    let start = i + 1;
    buf.get(start..start + 7).is_some_and(|h| h == [0, 4, b'M', b'Q', b'T', b'T', 5])
}

/// Checks CONNECT rules that need the broker's settings; `Err` carries the CONNACK code.
fn validate_connect(c: &Connect, limits: &crate::config::Limits) -> Result<(), u8> {
    let v5 = c.protocol.is_v5();
    if c.client_id.is_empty() && !v5 && (!c.clean_start || c.protocol == ProtocolVersion::V3_1) {
        // [MQTT-3.1.3-8] a zero-byte client id needs clean session (3.1 requires an id).
        return Err(reason::v3::IDENTIFIER_REJECTED);
    }
    if !v5 && c.keep_alive > limits.max_keepalive {
        // 3.x cannot be told a lower keep alive, so it is refused (as Mosquitto does).
        return Err(reason::v3::IDENTIFIER_REJECTED);
    }
    if v5 && c.properties.authentication_method.is_some() {
        // No enhanced authentication method is offered [MQTT-4.12.0-1].
        return Err(reason::BAD_AUTHENTICATION_METHOD);
    }
    if c.will.as_ref().is_some_and(|w| !limits.topic_fits(&w.topic)) {
        // The will would be published (and maybe retained) with a topic beyond the limits; 3.x
        // has no code for it, "not authorized" is the closest.
        return Err(if v5 { reason::TOPIC_NAME_INVALID } else { reason::v3::NOT_AUTHORIZED });
    }
    Ok(())
}

/// A client id for a client that sent none, chosen so that its home is this shard (a v5 client may
/// reconnect with it and must find its session here).
fn assign_client_id(shard: &Shard, tenant: &str) -> ByteString {
    let base = shard.new_uid();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mut i: u32 = 0;
    loop {
        let id = format!("ratatosk-{:x}-{:x}-{:x}", shard.id, base, nanos.wrapping_add(i));
        if shard.placement.shard_of(tenant, &id) == shard.id {
            return ByteString::from(id);
        }
        i = i.wrapping_add(1);
    }
}
