//! Admission: the overall and per-subject connection limits of this
//! process, and the count of live sessions a drain waits for.
//!
//! The relay shares no state between processes, so these limits are per
//! process: behind a load balancer with N relays a subject may hold up to
//! N × `--max-connections-per-subject` sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Why a session was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    AtCapacity,
    SubjectAtCapacity,
}

#[derive(Default)]
struct Counts {
    open: usize,
    per_subject: HashMap<String, usize>,
}

pub(crate) struct Limiter {
    max: usize,
    max_per_subject: usize,
    counts: Mutex<Counts>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the counts half-updated
    // (every update is a single statement), so a poisoned lock is usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Limiter {
    pub(crate) fn new(max: usize, max_per_subject: usize) -> Arc<Limiter> {
        Arc::new(Limiter {
            max,
            max_per_subject,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Admits a session for `subject` (None without client auth), or says
    /// which limit it hit. The permit releases the slot when dropped.
    pub(crate) fn admit(self: &Arc<Self>, subject: Option<&str>) -> Result<Permit, Refusal> {
        let mut c = lock(&self.counts);
        if c.open >= self.max {
            return Err(Refusal::AtCapacity);
        }
        if let Some(s) = subject {
            let n = c.per_subject.get(s).copied().unwrap_or(0);
            if n >= self.max_per_subject {
                return Err(Refusal::SubjectAtCapacity);
            }
            c.per_subject.insert(s.to_string(), n + 1);
        }
        c.open += 1;
        Ok(Permit {
            limiter: self.clone(),
            subject: subject.map(str::to_string),
        })
    }

    /// Sessions admitted and not yet ended.
    pub(crate) fn open(&self) -> usize {
        lock(&self.counts).open
    }

    pub(crate) fn at_capacity(&self) -> bool {
        self.open() >= self.max
    }
}

/// One admitted session's slot.
#[must_use = "dropping the permit frees the slot at once"]
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
    subject: Option<String>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = lock(&self.limiter.counts);
        c.open -= 1;
        if let Some(s) = &self.subject {
            if let Some(n) = c.per_subject.get_mut(s) {
                *n -= 1;
                if *n == 0 {
                    c.per_subject.remove(s);
                }
            }
        }
    }
}

/// Counts every upgraded connection's task (admitted or being refused with
/// a close frame), so a drain can wait for all of them.
#[derive(Default)]
pub(crate) struct Tracker {
    live: Mutex<usize>,
    idle: Notify,
}

impl Tracker {
    pub(crate) fn track(self: &Arc<Self>) -> Tracked {
        *lock(&self.live) += 1;
        Tracked(self.clone())
    }

    pub(crate) fn live(&self) -> usize {
        *lock(&self.live)
    }

    /// Resolves once no task is live.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Register before checking, so a wake-up between the check and
            // the await is not lost.
            notified.as_mut().enable();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

pub(crate) struct Tracked(Arc<Tracker>);

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut n = lock(&self.0.live);
        *n -= 1;
        if *n == 0 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_admit_up_to_the_bound_and_free_on_drop() {
        let l = Limiter::new(3, 2);
        let a = l.admit(Some("u")).unwrap();
        let b = l.admit(Some("u")).unwrap();
        assert_eq!(l.admit(Some("u")).err(), Some(Refusal::SubjectAtCapacity));
        let c = l.admit(Some("v")).unwrap();
        assert_eq!(l.admit(Some("w")).err(), Some(Refusal::AtCapacity));
        assert!(l.at_capacity());
        drop(a);
        let _d = l.admit(Some("u")).unwrap();
        drop((b, c));
        assert_eq!(l.open(), 1);
        let _e = l.admit(None).unwrap();
        assert_eq!(l.open(), 2);
    }

    #[tokio::test]
    async fn wait_idle_returns_when_the_last_task_ends() {
        let t = Arc::new(Tracker::default());
        let a = t.track();
        let waiter = tokio::spawn({
            let t = t.clone();
            async move { t.wait_idle().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(a);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("idle after the last task")
            .unwrap();
    }
}
