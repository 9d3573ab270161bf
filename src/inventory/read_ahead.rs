//! Reading ahead on a thread of its own: a report's rows are parsed (download, gunzip, CSV or
//! columnar decoding, key decoding) on one thread while the store applies the previous batch
//! on another, so an import uses both cores. The queue between them holds a few batches, so
//! memory stays bounded whatever the report's size.
//!
//! The reading thread starts on the first `next()`, not before: a store that decides not to
//! read (a report already imported) costs no download.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::store::Change;

/// Changes sent per message.
const BATCH: usize = 4096;
/// Batches waiting in the queue at most.
const QUEUE: usize = 4;

/// What the reading thread runs: it hands each change to `emit`, and stops when `emit`
/// returns `false` (the consumer has gone).
pub type Producer = Box<dyn FnOnce(&mut dyn FnMut(Result<Change>) -> bool) + Send>;

/// An iterator over changes produced on another thread.
pub struct ReadAhead {
    producer: Option<Producer>,
    receiver: Option<Receiver<Vec<Result<Change>>>>,
    thread: Option<JoinHandle<()>>,
    batch: std::vec::IntoIter<Result<Change>>,
}

impl ReadAhead {
    /// An iterator whose changes `producer` emits on a thread started at the first `next()`.
    pub fn new(producer: Producer) -> ReadAhead {
        ReadAhead {
            producer: Some(producer),
            receiver: None,
            thread: None,
            batch: Vec::new().into_iter(),
        }
    }

    /// Reads `changes` (built on the reading thread by `make`) ahead.
    pub fn of_iter<I, F>(make: F) -> ReadAhead
    where
        F: FnOnce() -> I + Send + 'static,
        I: Iterator<Item = Result<Change>>,
    {
        ReadAhead::new(Box::new(move |emit| {
            for change in make() {
                if !emit(change) {
                    break;
                }
            }
        }))
    }

    fn start(&mut self, producer: Producer) -> std::io::Result<()> {
        let (sender, receiver) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("lakeport-read".into())
            .spawn(move || run_producer(producer, &sender))?;
        self.receiver = Some(receiver);
        self.thread = Some(thread);
        Ok(())
    }
}

fn run_producer(producer: Producer, sender: &SyncSender<Vec<Result<Change>>>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut open = true;
    producer(&mut |change| {
        let is_err = change.is_err();
        batch.push(change);
        if batch.len() >= BATCH || is_err {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            open = sender.send(full).is_ok();
        }
        open && !is_err
    });
    if open && !batch.is_empty() {
        // The consumer may have gone meanwhile; nothing is lost then, it stopped reading.
        let _ = sender.send(batch);
    }
}

impl Iterator for ReadAhead {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Result<Change>> {
        if let Some(producer) = self.producer.take() {
            if let Err(e) = self.start(producer) {
                return Some(Err(Error::Io {
                    context: "starting the thread that reads the report".into(),
                    source: e,
                }));
            }
        }
        loop {
            if let Some(change) = self.batch.next() {
                return Some(change);
            }
            match self.receiver.as_ref()?.recv() {
                Ok(batch) => self.batch = batch.into_iter(),
                Err(_) => {
                    self.receiver = None;
                    if let Some(thread) = self.thread.take() {
                        if thread.join().is_err() {
                            return Some(Err(Error::store(
                                "the thread reading the report panicked",
                            )));
                        }
                    }
                    return None;
                }
            }
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Closing the queue first makes the reading thread's next send fail, so it stops.
        self.receiver = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Value;

    fn change(i: i64) -> Result<Change> {
        Ok(Change::Upsert(vec![Value::Int64(i)]))
    }

    #[test]
    fn yields_every_change_in_order_across_batches() {
        let n = (BATCH * 3 + 17) as i64;
        let got: Vec<Change> = ReadAhead::of_iter(move || (0..n).map(change))
            .collect::<Result<_>>()
            .unwrap();
        let want: Vec<Change> = (0..n).map(|i| change(i).unwrap()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn an_error_ends_the_stream_after_the_changes_before_it() {
        let items = ReadAhead::of_iter(|| {
            (0..10)
                .map(change)
                .chain(std::iter::once(Err(Error::InvalidInput(
                    "f:11: bad".into(),
                ))))
                .chain((11..20).map(change))
        });
        let got: Vec<Result<Change>> = items.collect();
        assert_eq!(got.len(), 11);
        assert!(matches!(&got[10], Err(Error::InvalidInput(m)) if m == "f:11: bad"));
    }

    #[test]
    fn nothing_is_read_until_asked_and_dropping_stops_the_reader() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let produced = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&produced);
        let mut items = ReadAhead::of_iter(move || {
            (0..i64::MAX).map(move |i| {
                counter.fetch_add(1, Ordering::SeqCst);
                change(i)
            })
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            produced.load(Ordering::SeqCst),
            0,
            "read before the first next()"
        );
        assert!(items.next().is_some());
        drop(items); // must return: the reader stops once the queue is closed
        let stopped_at = produced.load(Ordering::SeqCst);
        assert!(stopped_at <= BATCH * (QUEUE + 3), "{stopped_at}");
    }
}
