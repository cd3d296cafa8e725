//! Following a recording while its recorder is still writing it
//! (`analyze --follow`, like `tail -f`).
//!
//! A recording in progress is not Parquet yet: its footer is written at
//! close. What can be read of it is what its checkpoint sidecar describes
//! ([`crate::checkpoint`]): `record` flushes a row group at least every
//! second while events come, fsyncs it, then appends a checkpoint record
//! with that row group's footer. Row groups are only ever appended, and
//! the footer written at close lists them in the same order, so a reader
//! that remembers how many it has handed out can hand out just the new
//! ones each time, whether they come from the sidecar or, at the end, from
//! the footer. [`Follower::poll`] does that; the caller decides how often
//! to ask.
//!
//! The end is the recorder closing the file: the footer is written and
//! then the sidecar removed, so "no sidecar and a footer" is complete. A
//! recorder that died leaves its sidecar without the lock it held on it:
//! [`Step::Abandoned`] (then `analyze --repair`). The states in between
//! (the sidecar created but not yet holding a record, data flushed but its
//! record not yet appended, the footer being written) are retried while a
//! recorder holds the sidecar.
//!
//! Each poll in which the sidecar changed reads it whole (as
//! [`RecordingReader::open_recovering`] does): O(row groups so far) per
//! new checkpoint, once a second at most.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::checkpoint::recorder_holds;
use crate::paths::{checkpoint_path, has_checkpoint};
use crate::{FormatError, ReadOptions, RecordingReader};

/// How long a file may be neither complete nor checkpointed before that is
/// an error: a recorder creates the data file just before its sidecar.
const GRACE: Duration = Duration::from_secs(3);

/// What [`Follower::poll`] found.
#[derive(Debug)]
pub enum Step {
    /// Row groups `from..reader.num_row_groups()` of `reader` are new
    /// (possibly none, when `complete` and nothing was added at close).
    New {
        /// Boxed: a reader is large next to the other variants.
        reader: Box<RecordingReader>,
        from: usize,
        /// The recorder closed the file: nothing will follow.
        complete: bool,
    },
    /// Nothing new yet; the recorder is still writing.
    Waiting,
    /// The sidecar is there but no recorder holds it: the recorder stopped
    /// without closing the file. What was checkpointed has been handed out.
    Abandoned,
}

/// Hands out the row groups of a recording in progress as they are
/// checkpointed, then the rest when it is closed.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    options: ReadOptions,
    /// Row groups handed out so far.
    seen: usize,
    /// Length and modification time of the sidecar when last read.
    stamp: Option<(u64, SystemTime)>,
    started: Instant,
    /// When the file was first found neither complete nor checkpointed.
    unreadable_since: Option<Instant>,
    done: bool,
}

impl Follower {
    pub fn new(path: &Path, options: ReadOptions) -> Follower {
        Follower {
            path: path.to_path_buf(),
            options,
            seen: 0,
            stamp: None,
            started: Instant::now(),
            unreadable_since: None,
            done: false,
        }
    }

    /// Row groups handed out so far.
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// Looks once for new row groups. After a [`Step::New`] with `complete`,
    /// or [`Step::Abandoned`], there is nothing more to follow: further
    /// calls return [`Step::Waiting`].
    pub fn poll(&mut self) -> Result<Step, FormatError> {
        if self.done {
            return Ok(Step::Waiting);
        }
        let ck = checkpoint_path(&self.path);
        if has_checkpoint(&self.path) {
            let stamp = std::fs::metadata(&ck)
                .ok()
                .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            if stamp.is_some() && stamp == self.stamp {
                return Ok(self.idle());
            }
            return match RecordingReader::open_recovering_with(&self.path, self.options) {
                Ok(reader) => {
                    self.unreadable_since = None;
                    if reader.recovered() {
                        self.stamp = stamp;
                    }
                    self.hand_out(reader)
                }
                // Between two writes of the recorder (see the module docs): again later.
                Err(_) if recorder_holds(&self.path) => Ok(Step::Waiting),
                Err(e) => Err(e),
            };
        }
        match RecordingReader::open_with(&self.path, self.options) {
            Ok(reader) => self.hand_out(reader),
            // Not yet checkpointed, or the footer half written: for a while.
            Err(e @ (FormatError::NotParquet { .. } | FormatError::Unfinished { .. })) => {
                let since = *self.unreadable_since.get_or_insert_with(Instant::now);
                if since.elapsed() < GRACE || self.started.elapsed() < GRACE {
                    Ok(Step::Waiting)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Nothing changed: still recording, or abandoned.
    fn idle(&mut self) -> Step {
        if recorder_holds(&self.path) || !has_checkpoint(&self.path) {
            Step::Waiting
        } else {
            self.done = true;
            Step::Abandoned
        }
    }

    fn hand_out(&mut self, reader: RecordingReader) -> Result<Step, FormatError> {
        let n = reader.num_row_groups();
        let complete = !reader.recovered();
        if n < self.seen {
            return Err(FormatError::Checkpoint {
                path: self.path.clone(),
                detail: format!(
                    "now holds {n} row groups, fewer than the {} already read: it was rewritten while being followed",
                    self.seen
                ),
            });
        }
        if n == self.seen && !complete {
            return Ok(self.idle());
        }
        let from = self.seen;
        self.seen = n;
        self.done = complete;
        Ok(Step::New {
            reader: Box::new(reader),
            from,
            complete,
        })
    }
}
