//! Quicksilver, a Mercure hub. Crate map:
//! - `config`: typed configuration, loaded once (defaults < file < env < flags).
//! - `server`: listeners (plain and TLS with ALPN), hyper-util auto builder, graceful shutdown.
//! - `http`: routing and handlers; `http::response` maps every error to a response.
//! - `auth`: token presentation, JWS verification on `ring`, claims → grants.
//! - `topic`: character rules, reserved namespace, matchers and their caches.
//! - `hub`: the publish and subscribe pipelines, `Update` encoded once.
//! - `index`: the lock-sharded topic index.
//! - `subscriber`: subscriber handles and their bounded lock-free queues.
//! - `sse`: SSE framing and the streaming response body.
//! - `history`: the `History` trait and its backends.
//! - `alloc`: allocator housekeeping (the one fenced `unsafe` module).
pub mod alloc;
pub mod auth;
pub mod config;
pub mod error;
pub mod history;
pub mod http;
pub mod hub;
pub mod index;
pub mod server;
pub mod sse;
pub mod subscriber;
pub mod topic;
