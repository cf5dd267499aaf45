//! The queue and its ledger, driven by hand.

use super::*;

const CHUNK: usize = 1600; // 100 ms at 16 kHz

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn queue(max_chunks: usize) -> AudioQueue {
    AudioQueue::new(CHUNK, Duration::from_secs(30), max_chunks * CHUNK * 2)
}

fn push_chunks(q: &mut AudioQueue, n: u64, at_ms: u64) {
    for _ in 0..n {
        q.push(t(at_ms), &[0; CHUNK], false);
    }
}

fn send_all(q: &mut AudioQueue) {
    let mut wire = 0;
    while let Some(c) = q.pop_front() {
        wire += c.data.len() as u64;
        q.sent(c, wire);
    }
}

fn reports(q: &mut AudioQueue) -> Vec<(DropReason, u32, u64)> {
    q.take_reports(32.0)
        .into_iter()
        .map(|d| (d.reason, d.chunks, d.bytes))
        .collect()
}

#[test]
fn chunks_older_than_ttl_are_reported_dropped() {
    let mut q = queue(1000);
    for i in 0..10 {
        push_chunks(&mut q, 1, i * 100);
    }
    q.expire(t(30_450));
    assert_eq!(reports(&mut q), vec![(DropReason::Ttl, 5, 16_000)]);
    assert_eq!(q.front().unwrap().offset, 5 * 3200);
    assert_eq!(q.next_expiry(), Some(t(30_500)));
    assert!(q.conserved());
}

#[test]
fn capacity_drops_oldest_and_memory_stays_bounded() {
    let mut q = queue(10);
    for _ in 0..25 {
        push_chunks(&mut q, 1, 0);
        assert!(q.bytes() <= 10 * 3200);
        assert!(q.conserved());
    }
    assert_eq!(reports(&mut q), vec![(DropReason::Capacity, 15, 15 * 3200)]);
    assert_eq!(q.front().unwrap().offset, 15 * 3200);
}

#[test]
fn unacked_chunks_are_resent_in_order_after_rewind_and_forgotten_when_acked() {
    let mut q = queue(1000);
    push_chunks(&mut q, 3, 0);
    send_all(&mut q);
    push_chunks(&mut q, 1, 0);
    q.ack(3200);
    assert_eq!(q.ledger().acked_bytes, 3200);
    q.rewind();
    assert_eq!(
        q.ledger().sent_bytes,
        3200,
        "only the acked chunk stays sent"
    );
    let order: Vec<(u64, bool)> = std::iter::from_fn(|| q.pop_front())
        .map(|c| (c.offset / 3200, c.resend))
        .collect();
    assert_eq!(order, [(1, true), (2, true), (3, false)]);
    assert!(reports(&mut q).is_empty());
}

#[test]
fn unconfirmed_audio_evicted_for_capacity_is_reported_when_the_connection_dies() {
    // Generic protocol: chunks sent but never acknowledged, pushed out of
    // the queue by newer audio, then the connection dies. They must be
    // reported dropped, not forgotten as "sent".
    let mut q = queue(4);
    push_chunks(&mut q, 4, 0);
    send_all(&mut q);
    push_chunks(&mut q, 3, 0);
    assert!(
        reports(&mut q).is_empty(),
        "eviction of unconfirmed audio is not yet a loss"
    );
    q.ack(3200);
    assert_eq!(
        q.ledger().acked_bytes,
        3200,
        "evicted chunk 0 is confirmed by its range"
    );
    // The connection dies: chunk 3 is still held, back to the queue
    // for a resend; chunks 1 and 2 are gone and were never confirmed.
    q.rewind();
    assert_eq!(reports(&mut q), vec![(DropReason::Capacity, 2, 6400)]);
    assert!(q.conserved());
    let order: Vec<u64> = std::iter::from_fn(|| q.pop_front())
        .map(|c| c.offset / 3200)
        .collect();
    assert_eq!(order, [3, 4, 5, 6]);
}

#[test]
fn draining_reports_unsent_and_unconfirmed_apart() {
    let mut q = queue(1000);
    push_chunks(&mut q, 2, 0);
    send_all(&mut q);
    push_chunks(&mut q, 1, 0);
    q.push(t(0), &[0; 100], false);
    q.drain_all(DropReason::Closed);
    let mut r = reports(&mut q);
    r.sort_by_key(|e| e.2);
    assert_eq!(
        r,
        vec![
            (DropReason::Closed, 2, 3_200 + 200),
            (DropReason::Unconfirmed, 2, 6_400)
        ]
    );
    assert!(q.conserved());
    assert_eq!(q.ledger().sent_bytes, 0);
}

/// The stored ranges stay sorted and disjoint whatever order acks
/// confirm them in: touching and overlapping ranges merge.
#[test]
fn stored_ranges_merge_in_any_order() {
    let mut r = Vec::new();
    for (a, b) in [
        (10, 20),
        (30, 40),
        (0, 5),
        (20, 30),
        (50, 60),
        (4, 10),
        (55, 70),
    ] {
        super::note_stored(&mut r, a, b);
    }
    assert_eq!(r, vec![(0, 40), (50, 70)]);
    super::note_stored(&mut r, 40, 50);
    super::note_stored(&mut r, 7, 7);
    assert_eq!(r, vec![(0, 70)]);
}
