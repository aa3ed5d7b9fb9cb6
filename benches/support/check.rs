//! A benchmark's targets, judged: each bench states its targets here, they
//! are printed met or missed, and with `--check` on its command line a
//! missed target makes the bench exit non-zero (so a script or a CI job
//! can run it as a gate; `.ci/run` does not). A broken run (a recording
//! that did not end intact, say) fails with or without `--check`: its
//! figures mean nothing.
#![allow(dead_code)] // each benchmark uses a different subset

/// The targets of one run.
pub struct Targets {
    check: bool,
    met: Vec<String>,
    missed: Vec<String>,
    broken: Vec<String>,
}

impl Targets {
    /// `--check` read from the command line.
    pub fn from_args() -> Self {
        Self {
            check: std::env::args().any(|a| a == "--check"),
            met: Vec::new(),
            missed: Vec::new(),
            broken: Vec::new(),
        }
    }

    /// Target `what` (with its figure) was met when `met`.
    pub fn expect(&mut self, met: bool, what: impl Into<String>) {
        let what = what.into();
        if met {
            self.met.push(what);
        } else {
            self.missed.push(what);
        }
    }

    /// The run itself went wrong: it exits non-zero whatever the targets.
    pub fn broken(&mut self, what: impl Into<String>) {
        self.broken.push(what.into());
    }

    /// Prints the verdict; exits 1 on a broken run, or on a missed target
    /// under `--check`.
    pub fn finish(self) {
        for what in &self.met {
            println!("target met: {what}");
        }
        for what in &self.missed {
            println!("target MISSED: {what}");
        }
        for what in &self.broken {
            println!("BROKEN RUN: {what}");
        }
        if !self.broken.is_empty() {
            std::process::exit(1);
        }
        if self.check && !self.missed.is_empty() {
            println!("--check: {} target(s) missed", self.missed.len());
            std::process::exit(1);
        }
    }
}
