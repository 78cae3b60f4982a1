//! The rows of the benchmark table.
//!
//! Each binary prints its rows on standard output, one per line, as
//! `metric<TAB>ours<TAB>reference<TAB>ratio`; everything else goes to
//! standard error. `scripts/bench` collects the rows of every part into
//! one table.

use std::fmt;

/// One line of the table: a metric, our value, the reference value and
/// how many times the reference ours is.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    pub ours: Value,
    pub reference: Value,
}

/// A measured number with its unit, or why there is none.
#[derive(Debug, Clone)]
pub enum Value {
    Measured { value: f64, unit: &'static str },
    Missing(String),
}

impl Value {
    pub fn new(value: f64, unit: &'static str) -> Self {
        Self::Measured { value, unit }
    }

    pub fn missing(why: impl Into<String>) -> Self {
        Self::Missing(why.into())
    }

    fn number(&self) -> Option<f64> {
        match self {
            Self::Measured { value, .. } if value.is_finite() => Some(*value),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Measured { value, unit } => {
                // Three significant digits read well in a table; counts
                // stay whole.
                let digits = if value.abs() >= 100.0 || value.fract() == 0.0 {
                    0
                } else if value.abs() >= 10.0 {
                    1
                } else {
                    2
                };
                write!(f, "{value:.digits$} {unit}")
            }
            Self::Missing(why) => write!(f, "- ({why})"),
        }
    }
}

impl Row {
    pub fn new(metric: impl Into<String>, ours: Value, reference: Value) -> Self {
        Self {
            metric: metric.into(),
            ours,
            reference,
        }
    }

    /// `ours / reference`, when both are numbers and the reference is not 0.
    pub fn ratio(&self) -> Option<f64> {
        match (self.ours.number(), self.reference.number()) {
            (Some(ours), Some(reference)) if reference != 0.0 => Some(ours / reference),
            _ => None,
        }
    }

    /// Prints the row to standard output, tab-separated, at once (a run cut
    /// short keeps what it measured).
    pub fn print(&self) {
        let ratio = match self.ratio() {
            Some(ratio) => format!("{ratio:.2}"),
            None => "-".to_owned(),
        };
        println!(
            "{}\t{}\t{}\t{ratio}",
            self.metric, self.ours, self.reference
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_ours_over_the_reference_and_absent_without_both() {
        let row = Row::new("x", Value::new(50.0, "MB/s"), Value::new(200.0, "MB/s"));
        assert_eq!(row.ratio(), Some(0.25));
        let row = Row::new("x", Value::new(50.0, "MB/s"), Value::missing("not run"));
        assert_eq!(row.ratio(), None);
        let row = Row::new("x", Value::new(50.0, "MB/s"), Value::new(0.0, "MB/s"));
        assert_eq!(row.ratio(), None);
    }

    #[test]
    fn values_show_three_significant_digits_and_their_unit() {
        assert_eq!(Value::new(1234.4, "KiB").to_string(), "1234 KiB");
        assert_eq!(Value::new(12.345, "ms").to_string(), "12.3 ms");
        assert_eq!(Value::new(1.2345, "ms").to_string(), "1.23 ms");
        assert_eq!(Value::new(16.0, "peers").to_string(), "16 peers");
        assert_eq!(Value::missing("no peers").to_string(), "- (no peers)");
    }
}
