//! `record --hive DIR`: where a fleet's recordings go so that DuckDB,
//! Spark and Trino read them as one table and skip what a query does not
//! need. The recording is written as segments in hive-style partition
//! folders, `DIR/host=HOST/date=YYYY-MM-DD/HOST-YYYYMMDDTHHMMSSZ-NNNNNN.parquet`
//! (the date and start time in UTC), and a segment never spans a UTC
//! midnight: `date=` says which day its events are from (to within one
//! flush interval, when the last rows of a day are written).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The partition layout of one recording.
#[derive(Debug)]
pub struct Hive {
    root: PathBuf,
    host: String,
    /// `HOST-YYYYMMDDTHHMMSSZ`: the recording's start, so that recordings
    /// of one host never share a name.
    stem: String,
    /// The UTC date of each segment opened so far (index 1 first).
    dates: RefCell<Vec<String>>,
}

impl Hive {
    /// The layout under `root` for a recording of `host` starting at `start_secs` (Unix time).
    pub fn new(root: &Path, host: &str, start_secs: i64) -> Hive {
        // A host name is one path component, whatever it holds.
        let host: String = host
            .chars()
            .map(|c| if c == '/' || c == '\0' || c == '=' { '_' } else { c })
            .collect();
        let host = if host.is_empty() || host == "." || host == ".." {
            "unknown".to_string()
        } else {
            host
        };
        let (y, mo, d) = civil_date(start_secs.div_euclid(86_400));
        let t = start_secs.rem_euclid(86_400);
        let stem = format!(
            "{host}-{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z",
            t / 3600,
            t / 60 % 60,
            t % 60
        );
        Hive {
            root: root.to_path_buf(),
            host,
            stem,
            dates: RefCell::new(Vec::new()),
        }
    }

    /// The file of segment `index` (1-based). A segment's date is fixed
    /// when its path is first asked for: today's (UTC), then.
    pub fn segment_path(&self, index: u32) -> PathBuf {
        let i = index.max(1) as usize - 1;
        let mut dates = self.dates.borrow_mut();
        while dates.len() <= i {
            dates.push(date_text(today_days()));
        }
        self.root
            .join(format!("host={}", self.host))
            .join(format!("date={}", dates[i]))
            .join(format!("{}-{index:06}.parquet", self.stem))
    }

    /// Whether segment `index` is of a day that has ended (UTC).
    pub fn day_ended(&self, index: u32) -> bool {
        let i = index.max(1) as usize - 1;
        self.dates
            .borrow()
            .get(i)
            .is_some_and(|d| *d != date_text(today_days()))
    }

    /// What `analyze` (quoted) and DuckDB read the recording's segments as.
    pub fn glob(&self) -> PathBuf {
        self.root
            .join(format!("host={}", self.host))
            .join("date=*")
            .join(format!("{}-*.parquet", self.stem))
    }
}

fn today_days() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    secs.div_euclid(86_400)
}

fn date_text(days: i64) -> String {
    let (y, m, d) = civil_date(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// (year, month, day) of the day `days` after 1970-01-01 (proleptic
/// Gregorian; H. Hinnant's days-to-civil).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_557), (2026, 4, 14));
        assert_eq!(civil_date(20_787), (2026, 11, 30));
        assert_eq!(civil_date(20_788), (2026, 12, 1));
        // Every day of 1970..2100 follows the one before.
        let mut prev = civil_date(0);
        for days in 1..47_482 {
            let (y, m, d) = civil_date(days);
            let next_day = (prev.0, prev.1, prev.2 + 1) == (y, m, d);
            let next_month = (prev.0, prev.1 + 1, 1) == (y, m, d);
            let next_year = (prev.0 + 1, 1, 1) == (y, m, d) && prev.1 == 12 && prev.2 == 31;
            assert!(next_day || next_month || next_year, "{prev:?} -> {:?}", (y, m, d));
            prev = (y, m, d);
        }
    }

    #[test]
    fn paths_are_partitions_of_host_and_date() {
        // 2026-04-14T10:00:00Z
        let h = Hive::new(Path::new("/fleet"), "web1", 1_776_160_800);
        let p = h.segment_path(3);
        let today = date_text(today_days());
        assert_eq!(
            p,
            PathBuf::from(format!(
                "/fleet/host=web1/date={today}/web1-20260414T100000Z-000003.parquet"
            ))
        );
        assert_eq!(h.segment_path(3), p, "a segment's date stays");
        assert!(!h.day_ended(3));
        assert_eq!(
            h.glob(),
            PathBuf::from("/fleet/host=web1/date=*/web1-20260414T100000Z-*.parquet")
        );
        // A date fixed yesterday has ended.
        h.dates.borrow_mut()[0] = date_text(today_days() - 1);
        assert!(h.day_ended(1));
    }

    #[test]
    fn host_names_stay_one_component() {
        for (host, want) in [("a/b", "a_b"), ("", "unknown"), ("..", "unknown"), ("x=y", "x_y")] {
            let h = Hive::new(Path::new("d"), host, 0);
            assert_eq!(h.host, want);
            assert_eq!(
                h.segment_path(1).parent().unwrap().parent().unwrap(),
                Path::new("d").join(format!("host={want}"))
            );
        }
    }
}
