//! Waiting between attempts: exponential growth from an initial delay up to a cap, with jitter so
//! many waiters (a fleet of connections that lost its broker, writers that lost the database) do
//! not retry in lockstep. One policy for reconnecting to brokers and for retrying a batch.

use std::time::Duration;

/// How long to wait before each attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max }
    }

    /// The delay before retry number `attempt` (0 = the first retry). `jitter` is a number in
    /// [0, 1) drawn by the caller, which keeps this function pure and testable. The delay lies in
    /// [base/2, base] where base = min(initial * 2^attempt, max).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        let base = self.initial.saturating_mul(factor).min(self.max);
        let jitter = jitter.clamp(0.0, 1.0);
        base.mul_f64(0.5 + jitter / 2.0)
    }

    /// The longest delay the policy gives: what to wait after a failure that retrying soon
    /// cannot fix (a broker refusing our credentials).
    pub fn longest(&self, jitter: f64) -> Duration {
        self.delay(u32::MAX, jitter)
    }

    /// The delay before retry number `attempt`, with jitter drawn here.
    pub fn delay_with_random_jitter(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

    #[test]
    fn grows_exponentially_until_the_cap() {
        let delays: Vec<u64> = (0..10)
            .map(|attempt| POLICY.delay(attempt, 1.0).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            vec![1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000]
        );
    }

    #[test]
    fn jitter_keeps_delay_between_half_and_full_base() {
        for attempt in 0..20 {
            let low = POLICY.delay(attempt, 0.0);
            let high = POLICY.delay(attempt, 0.999);
            assert!(low <= high);
            assert!(high <= POLICY.max);
            assert!(low >= POLICY.initial / 2);
            let drawn = POLICY.delay_with_random_jitter(attempt);
            assert!(low <= drawn && drawn <= POLICY.delay(attempt, 1.0));
        }
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        assert_eq!(POLICY.delay(u32::MAX, 1.0), POLICY.max);
        assert_eq!(POLICY.longest(1.0), POLICY.max);
        assert_eq!(POLICY.longest(0.0), POLICY.max / 2);
    }
}
