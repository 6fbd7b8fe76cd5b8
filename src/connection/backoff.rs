//! Reconnect delays: exponential growth with full jitter, capped, so a fleet that lost its broker
//! does not reconnect in lockstep.

use std::time::Duration;

/// The delay before reconnect attempt number `attempt` (0 = first retry). `jitter` is a number in
/// [0, 1) drawn by the caller, which keeps this function pure and testable. The delay lies in
/// [base/2, base] where base = min(initial * 2^attempt, max).
pub fn reconnect_delay(attempt: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(31));
    let base = initial.saturating_mul(factor).min(max);
    let jitter = jitter.clamp(0.0, 1.0);
    base.mul_f64(0.5 + jitter / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INITIAL: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);

    #[test]
    fn grows_exponentially_until_the_cap() {
        let delays: Vec<u64> = (0..10)
            .map(|attempt| reconnect_delay(attempt, INITIAL, MAX, 1.0).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            vec![1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000]
        );
    }

    #[test]
    fn jitter_keeps_delay_between_half_and_full_base() {
        for attempt in 0..20 {
            let low = reconnect_delay(attempt, INITIAL, MAX, 0.0);
            let high = reconnect_delay(attempt, INITIAL, MAX, 0.999);
            assert!(low <= high);
            assert!(high <= MAX);
            assert!(low >= INITIAL / 2);
        }
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        assert_eq!(reconnect_delay(u32::MAX, INITIAL, MAX, 1.0), MAX);
    }
}
