//! A small work queue: named jobs run on a fixed number of worker threads, results come back in
//! the order the jobs were given, and progress (jobs done, elapsed time, an estimate of the time
//! left) is reported as each one finishes.
//!
//! The evaluation is made of many independent runs of real pipelines (one per setting, anchor
//! point or analysis), each single-threaded apart from GStreamer's streaming threads; running
//! one per core keeps a small machine busy without oversubscribing it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A unit of work: a name for progress and error messages, and the work itself.
pub struct Job<'a, T> {
    pub name: String,
    /// Relative cost, for the time-left estimate (any unit; 1.0 when unknown).
    pub cost: f64,
    run: Box<dyn FnOnce() -> Result<T, String> + Send + 'a>,
}

impl<'a, T> Job<'a, T> {
    pub fn new(
        name: impl Into<String>,
        cost: f64,
        run: impl FnOnce() -> Result<T, String> + Send + 'a,
    ) -> Self {
        Job {
            name: name.into(),
            cost: if cost.is_finite() && cost > 0.0 {
                cost
            } else {
                1.0
            },
            run: Box::new(run),
        }
    }
}

/// What a finished job reports to the progress callback.
#[derive(Debug, Clone)]
pub struct Progress<'n> {
    pub name: &'n str,
    pub done: usize,
    pub total: usize,
    pub elapsed: Duration,
    pub job_time: Duration,
    /// Time left, extrapolated from the cost done so far; `None` until a job has finished.
    pub eta: Option<Duration>,
}

/// Runs `jobs` on `workers` threads (at least 1). Returns every result in job order, or the
/// first error, prefixed with the failing job's name; after an error no new job is started.
/// `progress` is called (from the worker threads, one at a time) after each job.
pub fn run_jobs<'a, T: Send>(
    jobs: Vec<Job<'a, T>>,
    workers: usize,
    progress: impl Fn(&Progress<'_>, &T) + Sync,
) -> Result<Vec<T>, String> {
    let total = jobs.len();
    let total_cost: f64 = jobs.iter().map(|j| j.cost).sum();
    let queue: Mutex<VecDeque<(usize, Job<'a, T>)>> =
        Mutex::new(jobs.into_iter().enumerate().collect());
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..total).map(|_| None).collect());
    // (jobs done, cost done, first error)
    let state: Mutex<(usize, f64, Option<String>)> = Mutex::new((0, 0.0, None));
    let start = Instant::now();
    let worker = || {
        loop {
            if state.lock().expect("job state").2.is_some() {
                return;
            }
            let Some((index, job)) = queue.lock().expect("job queue").pop_front() else {
                return;
            };
            let t0 = Instant::now();
            let outcome = (job.run)();
            let job_time = t0.elapsed();
            let mut st = state.lock().expect("job state");
            match outcome {
                Ok(value) => {
                    st.0 += 1;
                    st.1 += job.cost;
                    let elapsed = start.elapsed();
                    let eta = (st.1 > 0.0)
                        .then(|| elapsed.mul_f64(((total_cost - st.1) / st.1).max(0.0)));
                    progress(
                        &Progress {
                            name: &job.name,
                            done: st.0,
                            total,
                            elapsed,
                            job_time,
                            eta,
                        },
                        &value,
                    );
                    drop(st);
                    results.lock().expect("job results")[index] = Some(value);
                }
                Err(e) => {
                    if st.2.is_none() {
                        st.2 = Some(format!("{}: {e}", job.name));
                    }
                    return;
                }
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(worker);
        }
    });
    if let Some(e) = state.into_inner().expect("job state").2 {
        return Err(e);
    }
    results
        .into_inner()
        .expect("job results")
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| format!("job {i} did not run")))
        .collect()
}

/// `1h02m`, `3m05s` or `12s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn results_come_back_in_job_order_whatever_the_finish_order() {
        let jobs: Vec<Job<usize>> = (0..12)
            .map(|i| {
                Job::new(format!("job {i}"), 1.0, move || {
                    // Later jobs finish first.
                    std::thread::sleep(Duration::from_millis(((12 - i) * 2) as u64));
                    Ok(i * 10)
                })
            })
            .collect();
        let seen = AtomicUsize::new(0);
        let out = run_jobs(jobs, 3, |p, _| {
            seen.fetch_add(1, Ordering::Relaxed);
            assert_eq!(p.total, 12);
            assert!(p.done >= 1 && p.done <= 12);
        })
        .unwrap();
        assert_eq!(out, (0..12).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(seen.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn the_first_error_names_its_job_and_stops_the_queue() {
        let started = AtomicUsize::new(0);
        let jobs: Vec<Job<()>> = (0..50)
            .map(|i| {
                let started = &started;
                Job::new(format!("job {i}"), 1.0, move || {
                    started.fetch_add(1, Ordering::Relaxed);
                    if i == 2 { Err("broken".into()) } else { Ok(()) }
                })
            })
            .collect();
        let err = run_jobs(jobs, 1, |_, _| {}).unwrap_err();
        assert_eq!(err, "job 2: broken");
        assert_eq!(
            started.load(Ordering::Relaxed),
            3,
            "nothing runs after the error"
        );
    }

    #[test]
    fn eta_falls_to_zero_and_zero_workers_means_one() {
        let jobs: Vec<Job<()>> = (0..4)
            .map(|i| Job::new(format!("{i}"), 2.0, || Ok(())))
            .collect();
        let last_eta = Mutex::new(None);
        run_jobs(jobs, 0, |p, _| {
            if p.done == p.total {
                *last_eta.lock().unwrap() = p.eta;
            }
        })
        .unwrap();
        assert_eq!(*last_eta.lock().unwrap(), Some(Duration::ZERO));
        assert!(
            run_jobs(Vec::<Job<()>>::new(), 2, |_, _| {})
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(185)), "3m05s");
        assert_eq!(human(Duration::from_secs(3720)), "1h02m");
    }
}
