//! Which CPUs a process runs on: the server children on the first ones,
//! the client on others, so the two never compete for a core.

use std::fmt;

/// A set of CPUs, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cpus(Vec<usize>);

impl Cpus {
    /// The machine's CPUs, not this process's mask: a child starts with
    /// its parent's mask, which holds only the client's CPUs.
    pub(crate) fn online() -> Self {
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
        Self::parse(online.trim()).unwrap_or_else(|| Self(vec![0]))
    }

    /// `count` CPUs from `first` on.
    pub(crate) fn range(first: usize, count: usize) -> Self {
        Self((first..first + count).collect())
    }

    /// A list as Linux writes it: `0-3,8,10-11`.
    pub(crate) fn parse(list: &str) -> Option<Self> {
        let mut cpus = Vec::new();
        for item in list.split(',').filter(|item| !item.is_empty()) {
            match item.split_once('-') {
                Some((first, last)) => {
                    cpus.extend(first.parse::<usize>().ok()?..=last.parse().ok()?)
                }
                None => cpus.push(item.parse().ok()?),
            }
        }
        (!cpus.is_empty()).then_some(Self(cpus))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the machine has every CPU of the set.
    pub(crate) fn exist(&self) -> bool {
        let online = Self::online();
        self.0.iter().all(|cpu| online.0.contains(cpu))
    }

    /// Restricts this thread, and the threads it starts later (the
    /// runtime's), to the set; false where the machine lacks one of them.
    pub(crate) fn pin_current_thread(&self) -> bool {
        use nix::sched::{CpuSet, sched_setaffinity};
        if !self.exist() {
            return false;
        }
        let mut set = CpuSet::new();
        for &cpu in &self.0 {
            if set.set(cpu).is_err() {
                return false;
            }
        }
        sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).is_ok()
    }
}

/// As Linux writes it, ranges folded: `0-3,8`.
impl fmt::Display for Cpus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut index = 0;
        while index < self.0.len() {
            let start = self.0[index];
            let mut end = start;
            while index + 1 < self.0.len() && self.0[index + 1] == end + 1 {
                index += 1;
                end += 1;
            }
            if !first {
                formatter.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(formatter, "{start}")?;
            } else {
                write!(formatter, "{start}-{end}")?;
            }
            index += 1;
        }
        Ok(())
    }
}

/// The server CPU of the pinned parts: one worker thread on CPU 0.
pub(crate) fn server_cpu() -> Cpus {
    Cpus::range(SERVER_CPU, 1)
}

/// The client CPU of the pinned parts: CPU 1.
pub(crate) fn client_cpu() -> Cpus {
    Cpus::range(CLIENT_CPU, 1)
}

/// The CPUs the server children run on in the pinned parts.
pub(crate) const SERVER_CPU: usize = 0;
/// The client's CPU in the pinned parts.
pub(crate) const CLIENT_CPU: usize = 1;

/// Worker threads the many-core parts try for the server, as the machine
/// allows: each leaves the client at least as many CPUs as the largest.
pub(crate) const SERVER_THREADS: [usize; 4] = [1, 2, 4, 8];

/// The server thread counts this machine allows, and the CPUs that leaves
/// the client (those after the largest server's): on 16 CPUs, servers of
/// 1, 2, 4 and 8 threads on CPUs 0–7 and the client on 8–15; on 2, one
/// server thread on CPU 0 and the client on CPU 1.
pub(crate) fn many_core_split() -> (Vec<usize>, Cpus) {
    let online = Cpus::online().len();
    let counts: Vec<usize> = SERVER_THREADS
        .into_iter()
        .filter(|threads| 2 * threads <= online.max(2))
        .collect();
    let most = counts.last().copied().unwrap_or(1);
    (
        counts,
        Cpus::range(most, online.saturating_sub(most).max(1)),
    )
}
