//! Server-Sent Events: wire framing of updates (encoded once, shared as `Bytes`) and the
//! streaming response body that drains a subscriber's queue.
mod body;
mod frame;

pub use body::{SseBody, StreamEnd};
pub use frame::{encode_event, HEARTBEAT, PREAMBLE};
