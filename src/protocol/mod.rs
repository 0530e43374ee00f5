//! The MQTT wire protocol: packets, properties, reason codes, and a pure streaming codec.
//!
//! Nothing here does I/O. `decode` takes bytes read so far and either yields a whole packet, says
//! more bytes are needed, or reports why the input is malformed (with the 5.0 reason code the
//! connection should be closed with). `encode` appends a packet for a given protocol version.

mod decode;
mod encode;
mod error;
mod packet;
mod properties;
pub mod reason;
pub mod topic;

#[cfg(test)]
mod tests;

pub use decode::{check, decode};
pub use encode::{encode, encode_publish, encoded_len, PublishParts};
pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use properties::Properties;
