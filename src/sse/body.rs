//! `SseBody`: the streaming response of one subscriber. It sends the preamble, streams the
//! replay from history in batches (only as fast as the client reads), then drains the live
//! queue, coalescing everything ready into one frame; heartbeats when idle (woken by the hub's
//! reaper, which scans every stream anyway: no timer per stream for them); ends at the deadline
//! (token `exp`, rotation: the only per-stream timer), on overflow after draining, or at
//! shutdown.
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::frame::{HEARTBEAT, PREAMBLE};
use crate::hub::{Hub, Subscription};
use crate::subscriber::{CloseReason, Subscriber};

/// Stop coalescing once a frame reaches this size, so one poll never builds an unbounded buffer.
const MAX_FRAME: usize = 256 * 1024;
/// Updates read from history per replay step.
const REPLAY_BATCH: usize = 256;

/// Why a stream ended (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    Deadline,
    Lagging,
    Shutdown,
}

/// Kept small (one per subscriber): the deadline lives in the subscriber, replay reads use a
/// buffer of their own.
pub struct SseBody {
    hub: Arc<Hub>,
    sub: Arc<Subscriber>,
    replay: Option<(u64, u64)>,
    /// Idle time before a heartbeat comment, in ms (0: none).
    heartbeat_ms: u32,
    started: bool,
    ended: bool,
    /// Fires at the deadline (only streams with one have it). Heartbeats need no timer: the
    /// reaper wakes streams quiet for longer than the heartbeat (`Hub::reap`).
    timer: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for SseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseBody")
            .field("subscriber", &self.sub.id)
            .finish()
    }
}

impl SseBody {
    /// The stream ends at the subscriber's deadline (earliest of token `exp` and rotation).
    /// Heartbeats need the hub's reaper running (`Hub::reap` wakes quiet streams), as the
    /// server does.
    pub fn new(hub: Arc<Hub>, subscription: Subscription, heartbeat: Option<Duration>) -> Self {
        let sub = subscription.subscriber;
        let timer = sub
            .deadline()
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        Self {
            hub,
            sub,
            replay: subscription.replay,
            heartbeat_ms: heartbeat.map_or(0, |h| {
                u32::try_from(h.as_millis()).unwrap_or(u32::MAX).max(1)
            }),
            started: false,
            ended: false,
            timer,
        }
    }

    pub fn subscriber(&self) -> &Arc<Subscriber> {
        &self.sub
    }

    fn end(&mut self, why: StreamEnd) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        tracing::debug!(subscriber = %self.sub.id, reason = ?why, "stream ended");
        if why == StreamEnd::Lagging {
            tracing::info!(subscriber = %self.sub.id, "subscriber too slow: queue overflowed, stream ended (it can resume with Last-Event-ID)");
        }
        self.ended = true;
        self.hub.unsubscribe(&self.sub);
        Poll::Ready(None)
    }

    fn past_deadline(&self, now: Instant) -> bool {
        self.sub.deadline().is_some_and(|d| now >= d)
    }

    /// True once the deadline has passed; until then the deadline timer wakes `cx`. For a
    /// connection that cannot take more bytes (so this body is not being polled). Spec
    /// "Subscribers": the hub closes the connection no later than the token's `exp`, read or not.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }

    /// Whether the stream has been quiet for its heartbeat interval.
    fn heartbeat_due(&self, now: Instant) -> bool {
        self.heartbeat_ms != 0 && self.sub.quiet_ms(now) >= u64::from(self.heartbeat_ms)
    }

    /// Next replay frame, streaming from history; `None` when the replay is done.
    fn next_replay(&mut self) -> Option<Bytes> {
        let engine = Arc::clone(self.hub.engine());
        let mut batch = Vec::with_capacity(REPLAY_BATCH);
        while let Some((after, until)) = self.replay {
            batch.clear();
            if let Err(e) = self
                .hub
                .history()
                .read_after(after, until, REPLAY_BATCH, &mut batch)
            {
                tracing::warn!(subscriber = %self.sub.id, error = %e, "replay stopped: history read failed");
                self.replay = None;
                return None;
            }
            if batch.is_empty() {
                self.replay = None;
                return None;
            }
            let mut out = Coalescer::default();
            let mut consumed = after;
            for u in batch.drain(..) {
                // Same frame cap as the live path: the rest of the batch is re-read next poll.
                if out.len() >= MAX_FRAME {
                    break;
                }
                consumed = u.seq;
                if self.sub.routes(&engine, &u.topics) && self.sub.may_read(&engine, &u) {
                    out.push(&u.frame);
                }
            }
            self.replay = (consumed < until).then_some((consumed, until));
            if let Some(frame) = out.finish() {
                return Some(frame);
            }
        }
        None
    }

    /// Everything ready in the live queue, coalesced.
    fn next_live(&mut self) -> Option<Bytes> {
        let mut out = Coalescer::default();
        while out.len() < MAX_FRAME {
            let Some(u) = self.sub.pop() else { break };
            out.push(&u.frame);
        }
        out.finish()
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if !self.ended {
            self.hub.unsubscribe(&self.sub);
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if !this.started {
            this.started = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(PREAMBLE)))));
        }
        let now = Instant::now();
        if this.past_deadline(now) {
            return this.end(StreamEnd::Deadline);
        }
        if this.sub.close_reason() == CloseReason::Shutdown {
            return this.end(StreamEnd::Shutdown);
        }
        if this.replay.is_some() {
            if let Some(frame) = this.next_replay() {
                this.sub.mark_progress();
                return Poll::Ready(Some(Ok(Frame::data(frame))));
            }
        }
        loop {
            if let Some(frame) = this.next_live() {
                this.sub.mark_progress();
                return Poll::Ready(Some(Ok(Frame::data(frame))));
            }
            if this.sub.close_reason() == CloseReason::Lagging {
                return this.end(StreamEnd::Lagging);
            }
            // Register, then look again: a push between the empty pop and the registration
            // would otherwise be missed until the next one.
            this.sub.register_waker(cx.waker());
            if !this.sub.is_empty() || this.sub.close_reason() != CloseReason::Open {
                if this.sub.close_reason() == CloseReason::Shutdown {
                    return this.end(StreamEnd::Shutdown);
                }
                continue;
            }
            break;
        }
        if this.poll_expired(cx) {
            return this.end(StreamEnd::Deadline);
        }
        if this.heartbeat_due(now) {
            this.sub.mark_progress();
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(HEARTBEAT)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Concatenates frames; a lone frame is passed through without copying.
#[derive(Default)]
struct Coalescer {
    first: Option<Bytes>,
    buf: Option<BytesMut>,
}

impl Coalescer {
    fn push(&mut self, frame: &Bytes) {
        match (&mut self.first, &mut self.buf) {
            (None, None) => self.first = Some(frame.clone()),
            (Some(first), None) => {
                let mut buf = BytesMut::with_capacity((first.len() + frame.len()) * 2);
                buf.extend_from_slice(first);
                buf.extend_from_slice(frame);
                self.first = None;
                self.buf = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(frame),
        }
    }

    fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.buf.as_ref().map_or(0, BytesMut::len)
    }

    fn finish(self) -> Option<Bytes> {
        match (self.first, self.buf) {
            (_, Some(buf)) => Some(buf.freeze()),
            (first, None) => first,
        }
    }
}
