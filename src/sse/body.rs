//! `SseBody`: the streaming response of one subscriber. It sends the preamble, streams the
//! replay from history in batches (only as fast as the client reads), then drains the live
//! queue, coalescing everything ready into one frame; heartbeats when idle; ends at the
//! deadline (token `exp`, rotation), on overflow after draining, or at shutdown.
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
use crate::hub::{Hub, Subscription, Update};
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

pub struct SseBody {
    hub: Arc<Hub>,
    sub: Arc<Subscriber>,
    replay: Option<(u64, u64)>,
    floor: u64,
    started: bool,
    ended: bool,
    heartbeat: Option<Duration>,
    deadline: Option<Instant>,
    /// One timer for both: fires at the next heartbeat or the deadline, whichever is first.
    timer: Option<Pin<Box<Sleep>>>,
    scratch: Vec<Arc<Update>>,
}

impl std::fmt::Debug for SseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseBody")
            .field("subscriber", &self.sub.id)
            .finish()
    }
}

impl SseBody {
    /// `deadline`: when the stream must end (earliest of token `exp` and rotation).
    pub fn new(
        hub: Arc<Hub>,
        subscription: Subscription,
        heartbeat: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Self {
        let timer = next_wake(Instant::now(), heartbeat, deadline)
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        Self {
            hub,
            sub: subscription.subscriber,
            replay: subscription.replay,
            floor: subscription.floor,
            started: false,
            ended: false,
            heartbeat,
            deadline,
            timer,
            scratch: Vec::new(),
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

    /// A data frame is going out: the client is reading.
    fn on_data(&mut self) {
        self.sub.mark_progress();
        self.reset_heartbeat();
    }

    fn reset_heartbeat(&mut self) {
        if self.heartbeat.is_some() {
            self.reset_timer(Instant::now());
        }
    }

    fn reset_timer(&mut self, now: Instant) {
        if let (Some(timer), Some(at)) = (
            &mut self.timer,
            next_wake(now, self.heartbeat, self.deadline),
        ) {
            timer.as_mut().reset(at);
        }
    }

    fn past_deadline(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// For a connection that cannot take more bytes (so this body is not being polled): true
    /// once the deadline has passed; until then the timer is armed for the deadline alone and
    /// wakes `cx` (heartbeats are moot while the connection is full). Spec "Subscribers": the
    /// hub closes the connection no later than the token's `exp`, read or not.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline else {
            return false;
        };
        if Instant::now() >= deadline {
            return true;
        }
        if let Some(timer) = &mut self.timer {
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Instant::now() >= deadline;
            }
        }
        false
    }

    /// After `poll_expired` armed the timer for the deadline only: back to the next heartbeat.
    pub fn rearm(&mut self) {
        self.reset_timer(Instant::now());
    }

    /// Next replay frame, streaming from history; `None` when the replay is done.
    fn next_replay(&mut self) -> Option<Bytes> {
        let engine = Arc::clone(self.hub.engine());
        while let Some((after, until)) = self.replay {
            self.scratch.clear();
            if let Err(e) =
                self.hub
                    .history()
                    .read_after(after, until, REPLAY_BATCH, &mut self.scratch)
            {
                tracing::warn!(subscriber = %self.sub.id, error = %e, "replay stopped: history read failed");
                self.replay = None;
                return None;
            }
            if self.scratch.is_empty() {
                self.replay = None;
                return None;
            }
            let mut out = Coalescer::default();
            let mut consumed = after;
            for u in self.scratch.drain(..) {
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
            if u.seq > self.floor {
                out.push(&u.frame);
            }
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
        if this.past_deadline(Instant::now()) {
            return this.end(StreamEnd::Deadline);
        }
        if this.sub.close_reason() == CloseReason::Shutdown {
            return this.end(StreamEnd::Shutdown);
        }
        if this.replay.is_some() {
            if let Some(frame) = this.next_replay() {
                this.on_data();
                return Poll::Ready(Some(Ok(Frame::data(frame))));
            }
        }
        loop {
            if let Some(frame) = this.next_live() {
                this.on_data();
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
        while let Some(timer) = &mut this.timer {
            if timer.as_mut().poll(cx).is_pending() {
                break;
            }
            let now = Instant::now();
            if this.past_deadline(now) {
                return this.end(StreamEnd::Deadline);
            }
            this.reset_timer(now);
            if this.heartbeat.is_some() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(HEARTBEAT)))));
            }
            // Only the deadline is timed and it is not reached yet: poll the re-armed timer.
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

/// When the stream's timer must next fire: the next heartbeat or the deadline, whichever is first.
fn next_wake(
    now: Instant,
    heartbeat: Option<Duration>,
    deadline: Option<Instant>,
) -> Option<Instant> {
    match (heartbeat.map(|every| now + every), deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
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
