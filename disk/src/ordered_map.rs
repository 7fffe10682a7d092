//! A bounded, order-preserving parallel map: one thread produces work items (usually by reading
//! a file), `workers` threads transform them (usually by compressing), and the caller consumes
//! the results in the order the items were produced. At most `in_flight` items exist at once,
//! so memory stays bounded however slow the consumer or one worker is.

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, sync_channel};
use std::sync::Mutex;

/// How many workers to use: the machine's cores (at least 1).
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Run `work` over every item of `items` on `workers` threads and hand each result to `sink`
/// in item order. `init` makes each worker's private state (a compressor, a buffer). The first
/// error (from `items`, `work` or `sink`) stops everything and is returned.
pub fn ordered_map<I, O, E, St, Items, Init, Work, Sink>(
    items: Items,
    workers: usize,
    in_flight: usize,
    init: Init,
    work: Work,
    mut sink: Sink,
) -> Result<(), E>
where
    I: Send,
    O: Send,
    E: Send,
    Items: Iterator<Item = Result<I, E>> + Send,
    Init: Fn() -> St + Sync,
    Work: Fn(&mut St, I) -> Result<O, E> + Sync,
    Sink: FnMut(O) -> Result<(), E>,
{
    let in_flight = in_flight.max(1);
    let (token_tx, token_rx) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        token_tx.send(()).expect("receiver alive");
    }
    let (job_tx, job_rx) = sync_channel::<(u64, I)>(in_flight);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = channel::<(u64, Result<O, E>)>();

    std::thread::scope(|s| {
        let producer_done = done_tx.clone();
        s.spawn(move || {
            for (seq, item) in (0u64..).zip(items) {
                // A token per item bounds the items alive; a closed channel means the consumer stopped.
                if token_rx.recv().is_err() {
                    return;
                }
                match item {
                    Ok(i) => {
                        if job_tx.send((seq, i)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = producer_done.send((seq, Err(e)));
                        return;
                    }
                }
            }
        });
        for _ in 0..workers.max(1) {
            let done_tx = done_tx.clone();
            let (job_rx, init, work) = (&job_rx, &init, &work);
            s.spawn(move || {
                let mut state = init();
                loop {
                    let job = job_rx.lock().expect("job queue lock").recv();
                    let Ok((seq, item)) = job else { return };
                    if done_tx.send((seq, work(&mut state, item))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);

        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        let result = 'consume: loop {
            let Ok((seq, out)) = done_rx.recv() else {
                break Ok(());
            };
            pending.insert(seq, out);
            while let Some(out) = pending.remove(&next) {
                next += 1;
                if let Err(e) = out.and_then(&mut sink) {
                    break 'consume Err(e);
                }
                let _ = token_tx.send(());
            }
        };
        // Closing our ends stops the producer and the workers if we stopped early.
        drop(token_tx);
        drop(done_rx);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_bounds() {
        let mut seen = Vec::new();
        let items = (0..1000u32).map(Ok::<_, String>);
        ordered_map(
            items,
            3,
            4,
            || (),
            |_, i| {
                if i % 7 == 0 {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                Ok(i * 2)
            },
            |o| {
                seen.push(o);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..1000u32).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn first_error_stops() {
        let mut seen = 0;
        let items = (0..100u32).map(|i| {
            if i == 50 {
                Err(format!("bad item {i}"))
            } else {
                Ok(i)
            }
        });
        let r = ordered_map(
            items,
            2,
            3,
            || (),
            |_, i| Ok(i),
            |_| {
                seen += 1;
                Ok(())
            },
        );
        assert_eq!(r, Err("bad item 50".to_string()));
        assert_eq!(seen, 50);
        let r = ordered_map(
            (0..100u32).map(Ok),
            2,
            3,
            || (),
            |_, i| Ok(i),
            |i| if i == 10 { Err(i) } else { Ok(()) },
        );
        assert_eq!(r, Err(10));
    }
}
