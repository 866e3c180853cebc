//! Several normalizer threads, one order: each chunk batch is numbered when
//! a normalizer takes it from the sources' channel, and the engine receives
//! the normalized batches strictly in that order (a batch that finishes
//! early waits for the ones before it). Sources, flush barriers, Kafka
//! offsets and the reorder buffer see the same sequence as with one
//! normalizer.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shared end the normalizers take chunk batches from, numbering them.
pub(super) struct NumberedReceiver<T> {
    inner: Mutex<(Receiver<T>, u64)>,
}

impl<T> NumberedReceiver<T> {
    pub(super) fn new(receiver: Receiver<T>) -> Arc<NumberedReceiver<T>> {
        Arc::new(NumberedReceiver {
            inner: Mutex::new((receiver, 0)),
        })
    }

    /// The next item and its number; waits at most `timeout`.
    pub(super) fn recv_timeout(&self, timeout: Duration) -> Result<(u64, T), RecvTimeoutError> {
        // A normalizer that panicked while holding the lock left the channel intact.
        let mut guard = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (receiver, next) = &mut *guard;
        let item = receiver.recv_timeout(timeout)?;
        let number = *next;
        *next += 1;
        Ok((number, item))
    }
}

/// The engine's end: numbered items in, items out in number order.
pub(super) struct OrderedReceiver<T> {
    receiver: Receiver<(u64, T)>,
    next: u64,
    waiting: BTreeMap<u64, T>,
}

/// The normalizers' end of the engine's channel.
pub(super) type OrderedSender<T> = SyncSender<(u64, T)>;

impl<T> OrderedReceiver<T> {
    pub(super) fn new(receiver: Receiver<(u64, T)>) -> OrderedReceiver<T> {
        OrderedReceiver {
            receiver,
            next: 0,
            waiting: BTreeMap::new(),
        }
    }

    fn take_next(&mut self) -> Option<T> {
        let item = self.waiting.remove(&self.next)?;
        self.next += 1;
        Some(item)
    }

    /// Once every sender is gone, what is still waiting goes out in order
    /// (a gap means a normalizer died with a batch: the rest is not held back).
    fn drain_after_disconnect(&mut self) -> Option<T> {
        let (&number, _) = self.waiting.iter().next()?;
        self.next = number;
        self.take_next()
    }

    pub(super) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        loop {
            if let Some(item) = self.take_next() {
                return Ok(item);
            }
            match self.receiver.try_recv() {
                Ok((number, item)) => {
                    self.waiting.insert(number, item);
                }
                Err(TryRecvError::Disconnected) => {
                    return self.drain_after_disconnect().ok_or(TryRecvError::Disconnected);
                }
                Err(TryRecvError::Empty) => return Err(TryRecvError::Empty),
            }
        }
    }

    pub(super) fn recv(&mut self) -> Result<T, std::sync::mpsc::RecvError> {
        loop {
            if let Some(item) = self.take_next() {
                return Ok(item);
            }
            match self.receiver.recv() {
                Ok((number, item)) => {
                    self.waiting.insert(number, item);
                }
                Err(error) => return self.drain_after_disconnect().ok_or(error),
            }
        }
    }

    pub(super) fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(item) = self.take_next() {
                return Ok(item);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(left) {
                Ok((number, item)) => {
                    self.waiting.insert(number, item);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return self.drain_after_disconnect().ok_or(RecvTimeoutError::Disconnected);
                }
                Err(RecvTimeoutError::Timeout) => return Err(RecvTimeoutError::Timeout),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn items_come_out_in_number_order_whatever_order_they_finish_in() {
        let (sender, receiver) = sync_channel(16);
        let mut ordered = OrderedReceiver::new(receiver);
        sender.send((1, "b")).unwrap();
        assert_eq!(ordered.try_recv(), Err(TryRecvError::Empty), "0 is not in yet");
        assert_eq!(
            ordered.recv_timeout(Duration::from_millis(5)),
            Err(RecvTimeoutError::Timeout)
        );
        sender.send((2, "c")).unwrap();
        sender.send((0, "a")).unwrap();
        assert_eq!(ordered.recv(), Ok("a"));
        assert_eq!(ordered.try_recv(), Ok("b"));
        assert_eq!(ordered.recv_timeout(Duration::from_millis(5)), Ok("c"));
        sender.send((4, "e")).unwrap();
        drop(sender);
        // 3 never comes: once the senders are gone, 4 is not held back.
        assert_eq!(ordered.recv(), Ok("e"));
        assert!(ordered.recv().is_err());
    }

    #[test]
    fn numbers_follow_the_order_items_are_taken() {
        let (sender, receiver) = sync_channel(4);
        let shared = NumberedReceiver::new(receiver);
        sender.send("x").unwrap();
        sender.send("y").unwrap();
        assert_eq!(shared.recv_timeout(Duration::from_millis(5)), Ok((0, "x")));
        assert_eq!(shared.recv_timeout(Duration::from_millis(5)), Ok((1, "y")));
        drop(sender);
        assert_eq!(
            shared.recv_timeout(Duration::from_millis(5)),
            Err(RecvTimeoutError::Disconnected)
        );
    }
}
