//! Native training and evaluation of Bedside's models on the shared data sets.
//!
//! Owns everything a model needs that the browser does not: reading the task folders
//! (`images/` + `labels.csv`), augmentation, the training loop with checkpoints, distillation from the
//! teacher, metrics with bootstrap confidence intervals, calibration and plots. Runs on burn's flex
//! CPU backend; the networks themselves live in `bedside-model`.

pub mod augment;
pub mod card;
pub mod cv;
pub mod data;
pub mod distill;
pub mod gate;
pub mod heat_check;
pub mod lesion;
pub mod metrics;
pub mod pipeline;
pub mod prune;
pub mod quantise;
pub mod review;
pub mod rng;
pub mod robustness;
pub mod sizes;
pub mod teacher;
pub mod trainer;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Data(String),
    #[error("{0}")]
    Model(String),
}

impl Error {
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io { action, path: path.to_path_buf(), source }
    }
}

/// Progress bars on stderr (hidden when it is not a terminal) and log lines that print above them.
#[derive(Clone)]
pub struct Progress {
    multi: indicatif::MultiProgress,
    quiet: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Progress { multi: indicatif::MultiProgress::new(), quiet: false }
    }
}

impl Progress {
    /// No bars, no log lines: for tests.
    pub fn hidden() -> Self {
        let multi = indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden());
        Progress { multi, quiet: true }
    }

    pub fn bar(&self, len: u64, prefix: &str) -> indicatif::ProgressBar {
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:>16} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        let bar = self.multi.add(indicatif::ProgressBar::new(len).with_style(style));
        bar.set_prefix(prefix.to_string());
        bar
    }

    /// A log line: above the bars on a terminal, as a plain line when stderr is redirected.
    pub fn println(&self, line: impl AsRef<str>) {
        if self.quiet {
        } else if self.multi.is_hidden() {
            eprintln!("{}", line.as_ref());
        } else {
            let _ = self.multi.println(line.as_ref());
        }
    }
}
