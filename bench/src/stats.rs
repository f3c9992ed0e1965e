//! Summaries of measurements: latency percentiles over pooled samples, rates over
//! repetitions, and ratios over alternated pairs. Pure arithmetic; knows nothing of what was measured.

use std::time::Duration;

use serde::Serialize;

/// Latency samples, pooled over every repetition.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Number of samples.
    pub samples: usize,
    /// Median, microseconds.
    pub p50_us: f64,
    /// 99th percentile (nearest rank), microseconds.
    pub p99_us: f64,
    /// Fastest sample, microseconds.
    pub min_us: f64,
    /// Slowest sample, microseconds.
    pub max_us: f64,
}

impl Latency {
    /// Summarise `samples` (any order).
    pub fn of(samples: &[Duration]) -> Self {
        let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(f64::total_cmp);
        Self {
            samples: us.len(),
            p50_us: percentile(&us, 0.50),
            p99_us: percentile(&us, 0.99),
            min_us: us.first().copied().unwrap_or(0.0),
            max_us: us.last().copied().unwrap_or(0.0),
        }
    }
}

/// One figure measured once per repetition (a rate, or a duration), summarised.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    /// Number of repetitions.
    pub reps: usize,
    /// Median over the repetitions.
    pub median: f64,
    /// Smallest repetition.
    pub min: f64,
    /// Largest repetition.
    pub max: f64,
}

impl Spread {
    /// Summarise one value per repetition.
    pub fn of(values: &[f64]) -> Self {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Self {
            reps: v.len(),
            median: percentile(&v, 0.50),
            min: v.first().copied().unwrap_or(0.0),
            max: v.last().copied().unwrap_or(0.0),
        }
    }
}

/// Ours over the baseline, one ratio per alternated pair: a repetition that measured ours and
/// then the baseline, so load that comes and goes hits both sides of a pair alike.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ratios {
    /// One ratio per pair, in the order the pairs ran.
    pub pairs: Vec<f64>,
    /// Median over the pairs.
    pub median: f64,
    /// Smallest pair.
    pub min: f64,
    /// Largest pair.
    pub max: f64,
}

impl Ratios {
    /// `ours[i] / base[i]` for every pair `i`; a pair whose baseline is not positive has no
    /// ratio and is left out (so `pairs` is then shorter than the repetitions).
    pub fn of(ours: &[f64], base: &[f64]) -> Self {
        debug_assert_eq!(ours.len(), base.len());
        let pairs: Vec<f64> = ours
            .iter()
            .zip(base)
            .filter(|&(_, &b)| b > 0.0)
            .map(|(&o, &b)| o / b)
            .collect();
        let s = Spread::of(&pairs);
        Self {
            pairs,
            median: s.median,
            min: s.min,
            max: s.max,
        }
    }
}

/// Nearest-rank percentile of sorted values; the median of an even count is the mean of the
/// middle two.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if q == 0.5 && n.is_multiple_of(2) {
        return (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
    }
    let rank = (q * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let l = Latency::of(&d);
        assert_eq!(l.samples, 100);
        assert_eq!(l.p50_us.round(), 51.0); // (50 + 51) / 2 = 50.5
        assert_eq!(l.p99_us.round(), 99.0);
        assert_eq!(l.min_us.round(), 1.0);
        assert_eq!(l.max_us.round(), 100.0);
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.reps), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of(&[]).median, 0.0);
        let r = Ratios::of(&[2.0, 3.0, 8.0, 1.0], &[1.0, 2.0, 4.0, 0.0]);
        assert_eq!(r.pairs, vec![2.0, 1.5, 2.0]);
        assert_eq!((r.median, r.min, r.max), (2.0, 1.5, 2.0));
    }
}
