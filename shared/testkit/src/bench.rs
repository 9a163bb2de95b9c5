//! What the benchmarks share: where a run's processor time went ([`CpuTimes`]), rates, latency
//! percentiles, and phase marks for a profile taken alongside.

use std::{collections::HashMap, time::Duration};

/// When each phase starts, so that a profile taken alongside can be cut by phase.
pub fn phase(name: &str) {
    let since_epoch = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .unwrap_or_default();
    eprintln!("[{:.3}] {name}", since_epoch.as_secs_f64());
}

/// Fresh planner statistics for every table, as a long-running database has them.
pub async fn analyze(db: &mut sqlx::PgConnection) {
    sqlx::query("ANALYZE").execute(db).await.expect("ANALYZE");
}

/// Calls per second.
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

/// `time` shared by `calls`, in ms each.
pub fn ms_per_call(time: Duration, calls: usize) -> f64 {
    ms(time) / calls as f64
}

/// The 50th and 99th percentiles and the maximum of `latencies`.
pub fn percentiles(latencies: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
    (at(0.50), at(0.99), *sorted.last().expect("some latencies"))
}

/// Processor time (user and system) used so far: by the whole machine, by this process and by
/// every other running process, summed by command name. Read before and after a run, it tells
/// what a figure cost and who paid for it (e.g. `postgres`, `tansu`); the time of processes that
/// ended in between (pgbench and its connections) counts only in `machine`. Linux only; elsewhere
/// zero.
#[derive(Debug, Clone, Default)]
pub struct CpuTimes {
    pub machine: Duration,
    pub own: Duration,
    pub by_command: HashMap<String, Duration>,
}

impl CpuTimes {
    pub fn now() -> Self {
        let mut times = Self {
            machine: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|stat| machine_busy(&stat))
                .unwrap_or_default(),
            ..Self::default()
        };
        let own = std::process::id().to_string();
        let Ok(processes) = std::fs::read_dir("/proc") else {
            return times;
        };
        for process in processes.flatten() {
            let pid = process.file_name().to_string_lossy().into_owned();
            // Processes may end while being read; those are skipped.
            let Some((command, used)) = std::fs::read_to_string(process.path().join("stat"))
                .ok()
                .and_then(|stat| cpu_of(&stat))
            else {
                continue;
            };
            if pid == own {
                times.own = used;
            } else {
                *times.by_command.entry(command).or_default() += used;
            }
        }
        times
    }

    /// What was used since `earlier`: this process's time, and each command's.
    pub fn since(&self, earlier: &Self) -> Self {
        let by_command = self
            .by_command
            .iter()
            .map(|(command, used)| {
                let before = earlier.by_command.get(command).copied().unwrap_or_default();
                (command.clone(), used.saturating_sub(before))
            })
            .collect();
        Self {
            machine: self.machine.saturating_sub(earlier.machine),
            own: self.own.saturating_sub(earlier.own),
            by_command,
        }
    }

    pub fn of(&self, command: &str) -> Duration {
        self.by_command.get(command).copied().unwrap_or_default()
    }
}

/// The command name and processor time of one `/proc/<pid>/stat` line.
fn cpu_of(stat: &str) -> Option<(String, Duration)> {
    // The command is in parentheses and may itself hold spaces and parentheses.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let command = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // utime and stime.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((command, ticks_to_time(ticks)))
}

/// The busy time of all processors from `/proc/stat`: user, nice, system, irq, softirq, steal.
fn machine_busy(stat: &str) -> Option<Duration> {
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| fields.get(i).copied().unwrap_or(0));
    Some(ticks_to_time(busy.sum()))
}

/// Clock ticks of USER_HZ, which is 100 on every Linux ABI in use.
fn ticks_to_time(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_sorted_latencies() {
        let latencies: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(
            percentiles(&latencies),
            (
                Duration::from_millis(51),
                Duration::from_millis(100),
                Duration::from_millis(100)
            )
        );
    }

    #[test]
    fn a_stat_line_gives_its_command_and_processor_time() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 37 0 0 20 0 9 0";
        let (command, used) = cpu_of(stat).expect("a well-formed line");
        assert_eq!(command, "tokio (rt) x");
        assert_eq!(used, Duration::from_millis(2_870));
        assert_eq!(cpu_of("4242 (cut"), None);
    }

    #[test]
    fn the_machine_s_busy_time_leaves_out_idle_and_waiting() {
        let stat = "cpu  100 5 40 9000 300 2 3 1 0 0\ncpu0 50 2 20 4500 150 1 1 0 0 0\n";
        assert_eq!(machine_busy(stat), Some(Duration::from_millis(1_510)));
        assert_eq!(machine_busy("intr 1 2 3"), None);
    }

    #[test]
    fn this_process_s_own_time_grows_while_it_works() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let before = CpuTimes::now();
        let started = std::time::Instant::now();
        // Busy until the kernel has counted 30 ms; a loaded machine only makes this take longer.
        while CpuTimes::now().since(&before).own < Duration::from_millis(30) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no processor time counted"
            );
        }
        assert!(
            !before.by_command.is_empty(),
            "other processes are counted too"
        );
    }
}
